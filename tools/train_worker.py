#!/usr/bin/env python3
"""ticket's training worker: ONNX Runtime training 1.19.2 driven by the Rust binary over stdin/stdout.

The protocol (framing, commands, errors) is documented at the top of src/train/protocol.rs; this file is its
Python half. Why a worker at all: no registry package exposes ORT's training C API to Rust, so training runs
through ORT's official Python API (onnxruntime.training.api) in this process (see docs/engine-facts.md).

Rules this worker keeps:
- Its stdout carries frames only. File descriptor 1 is moved to a private descriptor at start-up and fd 1 is
  pointed at stderr, so a stray print (Python or ORT's C++ logging) can never corrupt the stream.
- Every failure of a command comes back as an error frame naming the command and the cause; the worker goes
  on serving. It exits only on shutdown, on EOF of stdin (its parent closed it), or when the stream cannot be
  resynchronised (an unreadable frame header), after sending an error frame. If its parent dies, the kernel
  kills it at once (the parent starts it with the parent-death signal, src/runtime/child.rs), mid-command or not.
- No pickle: tensors travel as raw little-endian bytes after a JSON header.
"""
import contextlib
import json
import math
import os
import struct
import sys
import tempfile
import time
import traceback

PROTOCOL_VERSION = 2
# A header is JSON describing one command; anything larger is a framing bug, not a big command.
MAX_HEADER_BYTES = 64 << 20
DTYPES = {"f32": ("<f4", 4), "i64": ("<i8", 8)}


class CommandError(Exception):
    """A failure the caller can act on. kind: "input" (bad arguments or files) or "runtime"."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def input_error(message):
    return CommandError("input", message)


def runtime_error(message):
    return CommandError("runtime", message)


# ---------------------------------------------------------------------------------------------- imports
def preload_cuda_libraries():
    """Loads the CUDA 11.8 libraries of the nvidia-*-cu11 wheels (tools/requirements-train-cuda.txt).

    ORT 1.19 finds libcudart.so.11.0, libcublas.so.11 and libcudnn.so.8 only through the loader's search path,
    and LD_LIBRARY_PATH cannot be changed for a running process. Loading them by full path with RTLD_GLOBAL
    first works: the loader then resolves those sonames to the copies already in memory (cuDNN 8's own
    dlopen of its sub-libraries included). A CPU venv has no nvidia/ folder and this does nothing.
    """
    import ctypes
    import glob
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    order = ["cuda_runtime", "cublas", "cufft", "curand", "cudnn"]
    pending = [lib for root in spec.submodule_search_locations for name in order
               for lib in sorted(glob.glob(os.path.join(root, name, "lib", "lib*.so*")))]
    loaded, errors = [], {}
    # A library whose dependency (cublasLt for cublas, cudnn_ops_infer for cudnn_adv_infer) is not loaded yet
    # fails by soname; another pass after its dependency loaded succeeds.
    progress = True
    while pending and progress:
        progress, retry = False, []
        for lib in pending:
            try:
                ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
                loaded.append(os.path.basename(lib))
                progress = True
            except OSError as e:
                errors[lib] = e
                retry.append(lib)
        pending = retry
    for lib in pending:
        print(f"train_worker: could not preload {lib}: {errors[lib]}", file=sys.stderr)
    return loaded


def import_ort():
    """Imports onnxruntime's training API without torch.

    `import onnxruntime.training` runs its package __init__, which imports ortmodule and through it torch. The
    two submodules used here (api, artifacts) need neither: registering an empty stand-in for the package (with
    the real folder as its __path__) lets them import while __init__ never runs.
    """
    import importlib.util
    import types

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None:
        raise runtime_error("onnxruntime is not installed in this Python (run tools/setup.sh)")
    if "onnxruntime.training" not in sys.modules:
        stand_in = types.ModuleType("onnxruntime.training")
        stand_in.__path__ = [os.path.join(os.path.dirname(spec.origin), "training")]
        sys.modules["onnxruntime.training"] = stand_in
    import onnxruntime

    try:
        from onnxruntime.training import api, artifacts
    except ImportError as e:
        raise runtime_error(f"onnxruntime {onnxruntime.__version__} in this Python has no training API ({e}); "
                            "training needs onnxruntime-training-cpu==1.19.2 (tools/requirements-train.txt)")
    return onnxruntime, api, artifacts


# ---------------------------------------------------------------------------------------------- framing
class Stream:
    def __init__(self, rfile, wfile):
        self.r = rfile
        self.w = wfile

    def read_exact(self, n):
        chunks = []
        while n > 0:
            b = self.r.read(n)
            if not b:
                return None
            chunks.append(b)
            n -= len(b)
        return b"".join(chunks)

    def read_frame(self):
        """Returns (header dict, payload bytes), None on a clean EOF; raises FrameError when out of sync."""
        raw = self.read_exact(4)
        if raw is None:
            return None
        (n,) = struct.unpack("<I", raw)
        if n > MAX_HEADER_BYTES:
            raise FrameError(f"frame header of {n} bytes is over the {MAX_HEADER_BYTES} byte limit")
        body = self.read_exact(n)
        if body is None:
            raise FrameError("stdin ended inside a frame header")
        try:
            header = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise FrameError(f"frame header is not JSON: {e}")
        if not isinstance(header, dict):
            raise FrameError("frame header is not a JSON object")
        size = header.get("payload_bytes", 0)
        if not isinstance(size, int) or size < 0:
            raise FrameError(f"payload_bytes must be a non-negative integer, got {size!r}")
        payload = self.read_exact(size) if size else b""
        if payload is None:
            raise FrameError("stdin ended inside a frame payload")
        return header, payload

    def write_frame(self, header, tensors=()):
        """tensors: (name, numpy array) pairs, sent as raw little-endian bytes after the header."""
        import numpy as np

        descs, blobs = [], []
        for name, arr in tensors:
            arr = to_wire(arr)
            dtype = "f32" if arr.dtype == np.dtype("<f4") else "i64"
            descs.append({"name": name, "dtype": dtype, "shape": list(arr.shape)})
            blobs.append(arr.tobytes(order="C"))
        header = dict(header)
        header["tensors"] = descs
        header["payload_bytes"] = sum(len(b) for b in blobs)
        body = json.dumps(header, allow_nan=True).encode("utf-8")
        self.w.write(struct.pack("<I", len(body)))
        self.w.write(body)
        for b in blobs:
            self.w.write(b)
        self.w.flush()


class FrameError(Exception):
    """The byte stream cannot be parsed any further: the worker answers once and exits."""


def to_wire(arr):
    """An array as one of the two wire types: floats → f32, integers and booleans → i64."""
    import numpy as np

    arr = np.asarray(arr)
    if arr.dtype.kind == "f":
        return np.ascontiguousarray(arr, dtype="<f4")
    if arr.dtype.kind in "iub":
        return np.ascontiguousarray(arr, dtype="<i8")
    raise runtime_error(f"cannot send a tensor of dtype {arr.dtype}")


def decode_tensors(header, payload):
    """The tensors of a request, by name, in order."""
    import numpy as np

    descs = header.get("tensors", [])
    if not isinstance(descs, list):
        raise input_error("'tensors' must be a list")
    out = {}
    offset = 0
    for d in descs:
        try:
            name, dtype, shape = d["name"], d["dtype"], [int(s) for s in d["shape"]]
        except (KeyError, TypeError, ValueError):
            raise input_error(f"bad tensor descriptor {d!r}: needs name, dtype and shape")
        if dtype not in DTYPES:
            raise input_error(f"tensor '{name}': dtype {dtype!r} is not one of {sorted(DTYPES)}")
        if any(s < 0 for s in shape):
            raise input_error(f"tensor '{name}': negative dimension in shape {shape}")
        np_dtype, size = DTYPES[dtype]
        nbytes = math.prod(shape) * size
        if offset + nbytes > len(payload):
            raise input_error(f"tensor '{name}' {shape} needs {nbytes} bytes but the payload ends after {len(payload) - offset}")
        if name in out:
            raise input_error(f"tensor '{name}' is sent twice")
        out[name] = np.frombuffer(payload, dtype=np_dtype, count=math.prod(shape), offset=offset).reshape(shape)
        offset += nbytes
    if offset != len(payload):
        raise input_error(f"payload has {len(payload) - offset} bytes beyond its tensors")
    return out


# ---------------------------------------------------------------------------------------------- helpers
def arg(header, key, kind, default=...):
    if key not in header or header[key] is None:
        if default is ...:
            raise input_error(f"missing argument '{key}'")
        return default
    value = header[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise input_error(f"argument '{key}' must be {kind.__name__}, got {value!r}")
    return value


def str_list(header, key, default=...):
    value = arg(header, key, list, default)
    if value is not None and not all(isinstance(v, str) for v in value):
        raise input_error(f"argument '{key}' must be a list of strings")
    return value


def existing_file(path, what):
    if not os.path.isfile(path):
        raise input_error(f"{path}: {what} not found")
    return path


def value_info_types(graph_values):
    """name → (wire dtype or None, shape with None for symbolic dims) of ONNX value infos."""
    import onnx

    out = {}
    for v in graph_values:
        t = v.type.tensor_type
        elem = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.INT64: "i64"}.get(t.elem_type)
        shape = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim] if t.HasField("shape") else None
        out[v.name] = (elem, shape)
    return out


def replace_atomically(write, path):
    """Runs write(tmp) and renames tmp to path, so path holds the old file or the complete new one."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise input_error(f"{path}: the output folder does not exist")
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def quiet_info_logs():
    """Drops ORT's info lines from stderr while the block runs, keeping everything else.

    The gradient builder logs every graph transformer pass at info level through a logger that
    set_default_logger_severity does not reach; hundreds of those lines would push the real cause out of the
    stderr tail that the Rust side reports.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode("utf-8", "replace").splitlines():
                if " [I:onnxruntime" not in line and " [V:onnxruntime" not in line:
                    print(line, file=sys.stderr)


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# What an artifact set holds: ORT's four files and ticket's manifest (parameter names and shapes, user inputs,
# outputs) that `open` checks a checkpoint against.
MANIFEST = "ticket_artifacts.json"
ARTIFACT_FILES = {
    "training_model": "training_model.onnx",
    "eval_model": "eval_model.onnx",
    "optimizer_model": "optimizer_model.onnx",
    "checkpoint": "checkpoint",
}


# ---------------------------------------------------------------------------------------------- worker
class Worker:
    def __init__(self):
        self.cuda_libraries = preload_cuda_libraries()
        self.ort, self.api, self.artifacts = import_ort()
        import numpy
        import onnx

        # Sessions log through ORT's default logger: keep its warnings and errors, which are what a failing
        # run's stderr tail should show (artifact generation logs elsewhere: see quiet_info_logs).
        self.ort.set_default_logger_severity(3)
        self.np = numpy
        self.onnx = onnx
        self.session = None  # Session once `open` succeeded

    # -- commands ------------------------------------------------------------------------------------------
    def hello(self, h, tensors):
        return {
            "protocol": PROTOCOL_VERSION,
            "onnxruntime": self.ort.__version__,
            "onnx": self.onnx.__version__,
            "numpy": self.np.__version__,
            "python": sys.version.split()[0],
            "providers": self.ort.get_available_providers(),
            "cuda_libraries": self.cuda_libraries,
            "pid": os.getpid(),
        }, []

    def generate_artifacts(self, h, tensors):
        onnx = self.onnx
        model_path = existing_file(arg(h, "model", str), "model")
        requires_grad = str_list(h, "requires_grad")
        frozen = str_list(h, "frozen", [])
        optimizer = arg(h, "optimizer", str)
        out = arg(h, "out", str)
        if optimizer not in ("adamw", "sgd", "momentum"):
            raise input_error(f"optimizer must be 'adamw', 'sgd' or 'momentum', got {optimizer!r}")
        # ORT 1.19's SGD has neither momentum nor weight decay: "momentum" is torch's SGD applied by MomentumSgd
        # to the gradients ORT computed, so no optimizer model is generated for it.
        optim = {"adamw": self.artifacts.OptimType.AdamW, "sgd": self.artifacts.OptimType.SGD}.get(optimizer)
        momentum = arg(h, "momentum", float, 0.0)
        weight_decay = arg(h, "weight_decay", float, 0.0)
        if not (0.0 <= momentum < 1.0 and 0.0 <= weight_decay < 1.0):
            raise input_error(f"momentum {momentum} and weight decay {weight_decay} must lie in [0, 1)")
        clip = h.get("clip_grad_norm")
        if clip is not None and (optimizer != "momentum" or not isinstance(clip, (int, float)) or not clip > 0
                                 or not math.isfinite(clip)):
            raise input_error(f"clip_grad_norm must be a positive number and needs the momentum optimizer, got {clip!r}")
        try:
            model = onnx.load(model_path)
        except Exception as e:
            raise input_error(f"{model_path}: not a readable ONNX model ({e})")
        # ORT 1.19 rejects IR > 10 ("Unsupported model IR version"); say so before it fails deep inside.
        if model.ir_version > 10:
            raise input_error(f"{model_path}: IR version {model.ir_version} is newer than ONNX Runtime 1.19 loads (≤ 10)")
        if not model.graph.output:
            raise input_error(f"{model_path}: the graph has no outputs (the loss must be the first)")
        self.type_outputs(model, model_path)
        inits = {t.name: t for t in model.graph.initializer}
        for name in requires_grad + frozen:
            if name not in inits:
                raise input_error(f"{model_path}: '{name}' is not an initializer of the graph")
        both = sorted(set(requires_grad) & set(frozen))
        if both:
            raise input_error(f"{model_path}: {both} are both trainable and frozen")
        if not requires_grad:
            raise input_error("requires_grad is empty: nothing to train")
        for name in requires_grad:
            if inits[name].data_type != onnx.TensorProto.FLOAT:
                raise input_error(f"{model_path}: trainable parameter '{name}' is not float32")
        os.makedirs(out, exist_ok=True)  # the generator writes into the folder but does not create it
        try:
            with quiet_info_logs():
                self.artifacts.generate_artifacts(
                    model,
                    requires_grad=requires_grad,
                    frozen_params=frozen,
                    loss=None,  # the loss is already in the graph, as its first output
                    optimizer=optim,
                    artifact_directory=out,
                )
        except Exception as e:
            raise runtime_error(f"generating artifacts from {model_path} failed: {one_line(e)}")
        fixed = self.fix_eval_model(os.path.join(out, ARTIFACT_FILES["eval_model"]))
        manifest = {
            "protocol": PROTOCOL_VERSION,
            "model": os.path.abspath(model_path),
            "optimizer": optimizer,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "clip_grad_norm": clip,
            "params": [{"name": n, "shape": list(inits[n].dims), "requires_grad": n in requires_grad} for n in requires_grad + frozen],
            "inputs": [{"name": n, "dtype": t, "shape": s} for n, (t, s) in value_info_types(
                [i for i in model.graph.input if i.name not in inits]).items()],
            "outputs": [o.name for o in model.graph.output],
        }
        manifest_path = os.path.join(out, MANIFEST)
        replace_atomically(lambda tmp: write_text(tmp, json.dumps(manifest, indent=1)), manifest_path)
        files = {k: os.path.join(out, v) for k, v in ARTIFACT_FILES.items()}
        files["manifest"] = manifest_path
        return {"files": files, "eval_batchnorm_fixed": fixed, "outputs": manifest["outputs"]}, []

    def type_outputs(self, model, model_path):
        """Gives untyped graph outputs their inferred types.

        ONNX lets a graph output omit its type (ticket's GraphBuilder emits them so), but the artifact generator
        checks the model and fails with "Field 'type' of 'value_info' is required but missing".
        """
        untyped = [o for o in model.graph.output if not o.type.HasField("tensor_type")]
        if not untyped:
            return
        try:
            inferred = self.onnx.shape_inference.infer_shapes(model, strict_mode=True)
        except Exception as e:
            raise input_error(f"{model_path}: shape inference failed ({one_line(e)}); the graph outputs need types")
        known = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
        for o in untyped:
            v = known.get(o.name)
            if v is None or not v.type.HasField("tensor_type"):
                raise input_error(f"{model_path}: graph output '{o.name}' has no type and none could be inferred")
            o.type.CopyFrom(v.type)

    def fix_eval_model(self, path):
        """Drops outputs[1:] of BatchNormalization nodes in inference mode (ORT 1.19 generator bug).

        The generated eval model keeps the running mean/var outputs on BatchNormalization nodes with
        training_mode=0, and ORT then refuses to load it. Nothing reads those outputs.
        """
        model = self.onnx.load(path)
        fixed = 0
        for node in model.graph.node:
            if node.op_type != "BatchNormalization" or len(node.output) <= 1:
                continue
            mode = next((a.i for a in node.attribute if a.name == "training_mode"), 0)
            if mode == 0:
                del node.output[1:]
                fixed += 1
        if fixed:
            replace_atomically(lambda tmp: self.onnx.save(model, tmp), path)
        return fixed

    def open(self, h, tensors):
        folder = arg(h, "artifacts", str)
        checkpoint = arg(h, "checkpoint", str, os.path.join(folder, ARTIFACT_FILES["checkpoint"]))
        device = arg(h, "device", str, "cpu")
        threads = arg(h, "threads", int, 0)
        if device not in ("cpu", "cuda"):
            raise input_error(f"device must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and "CUDAExecutionProvider" not in self.ort.get_available_providers():
            raise runtime_error("device 'cuda' needs onnxruntime-training (CUDA 11.8) in the training venv; this one has "
                                f"{self.ort.get_available_providers()}")
        if not os.path.isdir(folder):
            raise input_error(f"{folder}: artifact folder not found")
        self.session = Session(self, folder, checkpoint, device, threads)
        return self.session.describe(), []

    def session_or_fail(self):
        if self.session is None:
            raise input_error("no artifacts are open (send 'open' first)")
        return self.session

    def train_step(self, h, tensors):
        return self.session_or_fail().step(tensors, training=True)

    def eval_step(self, h, tensors):
        return self.session_or_fail().step(tensors, training=False)

    def optimizer_step(self, h, tensors):
        s = self.session_or_fail()
        if s.grads_poisoned:
            raise input_error("the last train_step had a non-finite loss and its gradients were discarded; "
                              "run a train_step with a finite loss before the next optimizer_step")
        grad_norm = s.optimizer_or_fail().step()
        result = {"lr": s.optimizer.get_learning_rate()}
        if grad_norm is not None:
            result["grad_norm"] = grad_norm
        return result, []

    def lazy_reset_grad(self, h, tensors):
        self.session_or_fail().module.lazy_reset_grad()
        return {}, []

    def set_lr(self, h, tensors):
        s = self.session_or_fail()
        lr = arg(h, "lr", float)
        if not math.isfinite(lr) or lr < 0:
            raise input_error(f"learning rate must be finite and ≥ 0, got {lr}")
        s.optimizer_or_fail().set_learning_rate(lr)
        s.lr = lr
        return {"lr": s.optimizer.get_learning_rate()}, []

    def get_params(self, h, tensors):
        s = self.session_or_fail()
        names = str_list(h, "names", None)
        return {}, s.get_params(names)

    def set_params(self, h, tensors):
        s = self.session_or_fail()
        s.set_params(tensors)
        return {"names": list(tensors)}, []

    def save_checkpoint(self, h, tensors):
        s = self.session_or_fail()
        path = arg(h, "path", str)
        with_optimizer = arg(h, "include_optimizer_state", bool, False)
        s.save(path, with_optimizer)
        return {"path": path, "bytes": os.path.getsize(path)}, []

    def load_checkpoint(self, h, tensors):
        s = self.session_or_fail()
        path = existing_file(arg(h, "path", str), "checkpoint")
        self.session = Session(self, s.folder, path, s.device, s.threads, lr=s.lr)
        return self.session.describe(), []

    def export(self, h, tensors):
        s = self.session_or_fail()
        path = arg(h, "path", str)
        outputs = str_list(h, "outputs")
        if not outputs:
            raise input_error("export needs at least one output name")
        eval_graph = self.onnx.load(os.path.join(s.folder, ARTIFACT_FILES["eval_model"]), load_external_data=False).graph
        known = {o for n in eval_graph.node for o in n.output}
        unknown = [o for o in outputs if o not in known]
        if unknown:
            raise input_error(f"{unknown} are not values of the eval model")
        replace_atomically(lambda tmp: s.module.export_model_for_inferencing(tmp, outputs), path)
        return {"path": path}, []

    def forward(self, h, tensors):
        """An inference graph on the current parameters: the RPN forward a training step needs for its proposals, or a
        teacher's forward (its parameters are its own constants).

        Graph inputs named like checkpoint parameters are fed from the state (so the graph always sees the
        weights as they are now); the frame carries the others. One InferenceSession per model file is kept.
        """
        s = self.session_or_fail()
        path = existing_file(arg(h, "model", str), "forward model")
        key = (os.path.abspath(path), os.path.getmtime(path))
        sess = s.forward_sessions.get(key)
        if sess is None:
            # One session per file (the RPN forward and a teacher's alternate every step); a rewritten file
            # replaces its old session.
            s.forward_sessions = {k: v for k, v in s.forward_sessions.items() if k[0] != key[0]}
            options = session_options(self.ort, s.threads)
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if s.device == "cuda" else ["CPUExecutionProvider"]
            try:
                sess = self.ort.InferenceSession(path, options, providers=providers)
            except Exception as e:
                raise input_error(f"{path}: cannot open as an inference model ({one_line(e)})")
            s.forward_sessions[key] = sess
        params = s.state.parameters
        feeds = {}
        for i in sess.get_inputs():
            if i.name in tensors:
                feeds[i.name] = self.np.ascontiguousarray(tensors[i.name])
            elif i.name in params:
                feeds[i.name] = params[i.name].data
            else:
                raise input_error(f"{path}: input '{i.name}' is neither sent nor a parameter of the checkpoint")
        unknown = [n for n in tensors if n not in feeds]
        if unknown:
            raise input_error(f"{path} has no inputs named {unknown}")
        names = [o.name for o in sess.get_outputs()]
        try:
            outs = sess.run(names, feeds)
        except Exception as e:
            raise runtime_error(f"forward of {path} failed: {one_line(e)}")
        return {"outputs": names}, list(zip(names, outs))

    def _crash(self, h, tensors):
        """Test-only: dies the way a segfaulting kernel would, without a reply."""
        print("train_worker: _crash requested, exiting with status 17", file=sys.stderr, flush=True)
        os._exit(17)

    def _sleep(self, h, tensors):
        """Test-only: stands for a step that hangs."""
        time.sleep(arg(h, "seconds", float))
        return {}, []


class Session:
    """One open artifact set: checkpoint state, module (train + eval models) and optimizer.

    Built whole or not at all, so a failed `open`/`load_checkpoint` leaves the previous session in place.
    """

    def __init__(self, worker, folder, checkpoint, device, threads, lr=None):
        self.w = worker
        api = worker.api
        self.folder, self.device, self.threads, self.lr = folder, device, threads, None
        self.grads_poisoned = False
        self.forward_sessions = {}
        files = {k: os.path.join(folder, v) for k, v in ARTIFACT_FILES.items()}
        existing_file(files["training_model"], "training model (generate the artifacts first)")
        existing_file(files["eval_model"], "eval model (generate the artifacts first)")
        existing_file(checkpoint, "checkpoint")
        manifest_path = existing_file(os.path.join(folder, MANIFEST), "artifact manifest (generate the artifacts with ticket)")
        try:
            with open(manifest_path, encoding="utf-8") as f:
                manifest = json.load(f)
            self.inputs = {i["name"]: (i["dtype"], i["shape"]) for i in manifest["inputs"]}
        except (ValueError, KeyError, TypeError) as e:
            raise input_error(f"{manifest_path}: unreadable artifact manifest ({e})")
        try:
            self.state = api.CheckpointState.load_checkpoint(checkpoint)
        except Exception as e:
            raise input_error(f"{checkpoint}: not a readable training checkpoint ({one_line(e)})")
        self.check_checkpoint_matches(checkpoint, manifest)
        options = session_options(worker.ort, threads)
        profile = os.environ.get("TICKET_ORT_PROFILE")
        if profile:
            # One prefix per session: ORT names a profile by prefix and the second it started, so sessions made in
            # the same second would write into one file over each other.
            options.enable_profiling = True
            options.profile_file_prefix = profile + "train"
        try:
            self.module = api.Module(files["training_model"], self.state, files["eval_model"], device=device, session_options=options)
        except Exception as e:
            raise runtime_error(f"cannot build the training session from {folder} with {checkpoint}: {one_line(e)}")
        self.optimizer = None
        if manifest.get("optimizer") == "momentum":
            self.optimizer = MomentumSgd(worker.np, self.state, manifest.get("momentum", 0.9), manifest.get("weight_decay", 0.0),
                                         manifest.get("clip_grad_norm"))
            self.optimizer.load(checkpoint + MomentumSgd.SUFFIX)
            if lr is not None:
                self.optimizer.set_learning_rate(lr)
                self.lr = lr
        elif os.path.isfile(files["optimizer_model"]):
            if profile:
                options.profile_file_prefix = profile + "optimizer"
            try:
                self.optimizer = api.Optimizer(files["optimizer_model"], self.module)
            except Exception as e:
                raise runtime_error(f"cannot build the optimizer from {files['optimizer_model']}: {one_line(e)}")
            if lr is not None:
                self.optimizer.set_learning_rate(lr)
                self.lr = lr

    def check_checkpoint_matches(self, checkpoint, manifest):
        """A checkpoint from another graph must fail here, by name and shape, not somewhere inside a step.

        ORT itself takes any training-model input that the checkpoint lacks for a user input, so a foreign
        checkpoint would surface as a confusing "missing input" at the first step.
        """
        have = {n: list(p.data.shape) for n, p in self.state.parameters}
        want = {p["name"]: p["shape"] for p in manifest["params"]}
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        shapes = [f"'{n}' {have[n]} vs {want[n]}" for n in sorted(set(want) & set(have)) if have[n] != want[n]]
        if missing or extra or shapes:
            parts = []
            if missing:
                parts.append(f"lacks {missing[:5]}")
            if extra:
                parts.append(f"has unknown parameters {extra[:5]}")
            if shapes:
                parts.append(f"differs in shape ({', '.join(shapes[:5])})")
            raise input_error(f"{checkpoint} does not match the artifacts in {self.folder}: it {'; '.join(parts)} "
                              "(a checkpoint from another graph?)")

    def optimizer_or_fail(self):
        if self.optimizer is None:
            raise input_error(f"{self.folder} has no optimizer model")
        return self.optimizer

    def describe(self):
        params = []
        for name, p in self.state.parameters:
            params.append({"name": name, "shape": list(p.data.shape), "requires_grad": bool(p.requires_grad)})
        m = self.module
        train_outputs = m.train().output_names()
        eval_inputs, eval_outputs = m.eval().input_names(), m.eval().output_names()
        m.train()
        return {
            "train_inputs": [{"name": n, "dtype": t, "shape": s} for n, (t, s) in self.inputs.items()],
            "train_outputs": train_outputs,
            "eval_inputs": eval_inputs,
            "eval_outputs": eval_outputs,
            "params": params,
            "lr": self.optimizer.get_learning_rate() if self.optimizer else None,
            "device": self.device,
        }

    def ordered_inputs(self, tensors, names):
        np = self.w.np
        missing = [n for n in names if n not in tensors]
        extra = [n for n in tensors if n not in names]
        if missing or extra:
            raise input_error(f"inputs do not match the model: missing {missing}, unexpected {extra} (expects {names})")
        out = []
        for n in names:
            arr = tensors[n]
            dtype, shape = self.inputs.get(n, (None, None))
            if dtype is not None and DTYPES[dtype][0] != arr.dtype.str:
                raise input_error(f"input '{n}' is {arr.dtype}, the model expects {dtype}")
            if shape is not None and (len(shape) != arr.ndim or any(d is not None and d != a for d, a in zip(shape, arr.shape))):
                raise input_error(f"input '{n}' has shape {list(arr.shape)}, the model expects {shape} "
                                  "(shapes are fixed per artifact set)")
            out.append(np.ascontiguousarray(arr))
        return out

    def step(self, tensors, training):
        np = self.w.np
        m = self.module.train(training)
        try:
            names = m.input_names()
            inputs = self.ordered_inputs(tensors, names)
            try:
                fetched = m(*inputs)
            except Exception as e:
                raise runtime_error(f"{'train' if training else 'eval'} step failed: {one_line(e)}")
            outputs = m.output_names()
        finally:
            m.train()
        if not isinstance(fetched, tuple):
            fetched = (fetched,)
        loss_arr = np.asarray(fetched[0])
        if loss_arr.size != 1:
            raise input_error(f"the first output '{outputs[0]}' is the loss and must hold one value, it has shape {list(loss_arr.shape)}")
        loss = float(loss_arr.reshape(-1)[0])
        finite = math.isfinite(loss)
        if training:
            # Never let non-finite gradients reach the optimizer. lazy_reset_grad only zeroes them before the
            # next backward pass, so optimizer_step is refused until a finite step has run.
            self.grads_poisoned = not finite
            if not finite:
                m.lazy_reset_grad()
        # JSON has no NaN: a non-finite loss is null here, and exact in the first output tensor.
        result = {"loss": loss if finite else None, "finite": finite, "grads_discarded": training and not finite}
        return result, list(zip(outputs, fetched))

    def get_params(self, names):
        params = self.state.parameters
        if names is None:
            names = [n for n, _ in params]
        unknown = [n for n in names if n not in params]
        if unknown:
            raise input_error(f"no parameters named {unknown} in the checkpoint")
        return [(n, params[n].data) for n in names]

    def set_params(self, tensors):
        params = self.state.parameters
        for name, arr in tensors.items():
            if name not in params:
                raise input_error(f"no parameter named '{name}' in the checkpoint")
            have = params[name].data
            if list(have.shape) != list(arr.shape) or have.dtype != arr.dtype:
                raise input_error(f"parameter '{name}' is {have.dtype}{list(have.shape)}, got {arr.dtype}{list(arr.shape)}")
        # Checked all first, so a bad tensor changes nothing.
        for name, arr in tensors.items():
            params[name] = np_copy(self.w.np, arr)

    def save(self, path, with_optimizer):
        if with_optimizer and self.optimizer is None:
            raise input_error(f"{self.folder} has no optimizer model, so there is no optimizer state to save")
        api = self.w.api
        if isinstance(self.optimizer, MomentumSgd):
            self.optimizer.save(path + MomentumSgd.SUFFIX, with_optimizer)
            with_optimizer = False
        replace_atomically(lambda tmp: api.CheckpointState.save_checkpoint(self.state, tmp, with_optimizer), path)


class MomentumSgd:
    """torch.optim.SGD (momentum, weight decay, no dampening, no Nesterov) on ORT's gradients.

    d = g + weight_decay·w; buf = momentum·buf + d (buf = d at the first step); w -= lr·buf. Masked weights
    have g = 0 (the graph uses W·M) and w = 0, so they stay exactly 0. The momentum buffers are the optimizer
    state: saved next to a checkpoint as `<checkpoint>.momentum.npz` (plain arrays, no pickle) when asked.
    With `clip`, g is first scaled by min(1, clip / (‖g‖ + 1e-6)), ‖g‖ the L2 norm over every trainable
    gradient (torch.nn.utils.clip_grad_norm_), and step() returns ‖g‖.
    """

    SUFFIX = ".momentum.npz"

    def __init__(self, np, state, momentum, weight_decay, clip=None):
        self.np, self.state = np, state
        self.momentum, self.weight_decay, self.lr = float(momentum), float(weight_decay), 0.0
        self.clip = None if clip is None else float(clip)
        self.buffers = {}

    def get_learning_rate(self):
        return self.lr

    def set_learning_rate(self, lr):
        self.lr = float(lr)

    def step(self):
        np, params = self.np, self.state.parameters
        lr = np.float32(self.lr)
        # One gradient at a time, as ORT hands them out; clipping needs them all first, for their norm.
        grads = ((name, p, g) for name, p in params if p.requires_grad for g in [p.grad] if g is not None)
        norm = None
        if self.clip is not None:
            grads = list(grads)
            # Float64 sums: the norm of ~10⁷ float32 squares, exact enough that the scale is torch's to 1e-6.
            wide = (g.ravel().astype(np.float64) for _, _, g in grads)
            norm = math.sqrt(sum(float(np.dot(v, v)) for v in wide))
            if not math.isfinite(norm):
                raise runtime_error(f"the gradients' norm is {norm} with a finite loss; no parameter was changed")
            scale = min(1.0, self.clip / (norm + 1e-6))
            if scale < 1.0:
                grads = [(name, p, g * np.float32(scale)) for name, p, g in grads]
        for name, p, g in grads:
            w = p.data
            d = g + np.float32(self.weight_decay) * w if self.weight_decay else g
            buf = self.buffers.get(name)
            if buf is None or not self.momentum:
                buf = np.array(d, dtype=np.float32, copy=True)
            else:
                buf *= np.float32(self.momentum)
                buf += d
            self.buffers[name] = buf
            params[name] = (w - lr * buf).astype(np.float32, copy=False)
        return norm

    def save(self, path, with_state):
        if not with_state:
            if os.path.exists(path):
                os.remove(path)  # a stale state file must not be picked up with this checkpoint
            return
        def write(tmp):
            with open(tmp, "wb") as f:
                self.np.savez(f, **self.buffers)
        replace_atomically(write, path)

    def load(self, path):
        self.buffers = {}
        if os.path.isfile(path):
            try:
                with self.np.load(path, allow_pickle=False) as z:
                    self.buffers = {k: self.np.array(z[k], dtype=self.np.float32) for k in z.files}
            except Exception as e:
                raise input_error(f"{path}: unreadable momentum state ({one_line(e)})")


def session_options(ort, threads):
    """ORT session options of the training module and of forward graphs: `threads` intra-op threads (0: ORT's
    choice), spinning between parallel regions (ORT's default). Measured on a quiet 2-core machine: the
    full-width Mask R-CNN R18-FPN step at 320² took 1924 / 1979 ms spinning against 2040 / 2119 ms not; in a real
    run of the small synthetic Mask R-CNN the Rust side's data + targets and RPN forward between steps were not
    slowed (6.2–7.8 and 3.5–4.7 ms against 6.2–8.1 and 4.5–5.5 ms) and the losses were identical."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if os.environ.get("TICKET_ORT_PARALLEL") == "1":
        # An experiment's switch (docs/training.md): independent branches of the graph, such as the box and mask
        # heads' RoIAlign gradients (single-threaded loops in ORT 1.19), run side by side.
        options.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        options.inter_op_num_threads = 2
    return options


def np_copy(np, arr):
    # ORT copies from the buffer; a writable contiguous array avoids read-only frombuffer views.
    return np.array(arr, copy=True, order="C")


def one_line(e):
    text = str(e).strip().replace("\n", " ")
    return text if len(text) < 2000 else text[:2000] + "…"


# The commands a frame may name (methods of Worker), besides `shutdown`. `_crash` and `_sleep` exist for tests.
COMMANDS = {
    "hello", "generate_artifacts", "open", "train_step", "eval_step", "optimizer_step", "lazy_reset_grad", "set_lr",
    "get_params", "set_params", "save_checkpoint", "load_checkpoint", "export", "forward", "_crash", "_sleep",
}


# ---------------------------------------------------------------------------------------------- main loop
def main():
    # fd 1 becomes private to the protocol; anything else written to stdout ends up on stderr.
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    proto_in = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    stream = Stream(proto_in, proto_out)

    try:
        worker = Worker()
        startup_error = None
    except Exception as e:  # reported on the first command, which is `hello`
        traceback.print_exc()
        worker, startup_error = None, e

    while True:
        try:
            frame = stream.read_frame()
        except FrameError as e:
            stream.write_frame({"ok": False, "cmd": None, "error": {"kind": "runtime", "message": f"protocol: {e}"}})
            return 2
        if frame is None:
            return 0
        header, payload = frame
        cmd = header.get("cmd")
        handler = getattr(Worker, cmd) if cmd in COMMANDS else None
        try:
            if cmd == "shutdown":
                stream.write_frame({"ok": True, "cmd": cmd, "result": {}})
                return 0
            if handler is None:
                raise input_error(f"unknown command {cmd!r} (known: {', '.join(sorted(COMMANDS))}, shutdown)")
            if worker is None:
                raise runtime_error(f"the worker could not start: {one_line(startup_error)}")
            tensors = decode_tensors(header, payload)
            result, out_tensors = handler(worker, header, tensors)
            stream.write_frame({"ok": True, "cmd": cmd, "result": result}, out_tensors)
        except CommandError as e:
            stream.write_frame({"ok": False, "cmd": cmd, "error": {"kind": e.kind, "message": str(e)}})
        except Exception as e:
            traceback.print_exc()
            stream.write_frame({"ok": False, "cmd": cmd, "error": {"kind": "runtime", "message": f"{type(e).__name__}: {one_line(e)}"}})


if __name__ == "__main__":
    sys.exit(main())
