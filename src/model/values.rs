//! A parameter's values, dense or as a compact ticket file stores them (a bitmap of the non-zero positions and
//! the non-zero values). A model imported from a compact file keeps its packed tensors packed, so inference
//! can hand the non-zeros to the sparse kernels without a dense copy; whatever needs the dense values (pruning,
//! training, export, a layer that runs dense) asks for them and gets them materialised.
use crate::onnx::compact::Packed;
use std::borrow::Cow;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub enum Values {
    Dense(Vec<f32>),
    /// Shared with the imported model's `OnnxModel::packed` (no copy).
    Packed(Arc<Packed>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Dense(v) => v.len(),
            Values::Packed(p) => p.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dense values: borrowed when held dense, materialised when packed.
    pub fn dense(&self) -> Cow<'_, [f32]> {
        match self {
            Values::Dense(v) => Cow::Borrowed(v),
            Values::Packed(p) => Cow::Owned(p.dense()),
        }
    }

    /// The packed form, when the values are held packed.
    pub fn packed(&self) -> Option<&Arc<Packed>> {
        match self {
            Values::Dense(_) => None,
            Values::Packed(p) => Some(p),
        }
    }

    /// The dense values to change in place (packed values are materialised first, for good).
    pub fn to_mut(&mut self) -> &mut Vec<f32> {
        if let Values::Packed(p) = self {
            *self = Values::Dense(p.dense());
        }
        match self {
            Values::Dense(v) => v,
            Values::Packed(_) => unreachable!("made dense above"),
        }
    }

    pub fn into_dense(self) -> Vec<f32> {
        match self {
            Values::Dense(v) => v,
            Values::Packed(p) => p.dense(),
        }
    }

    /// Values that are not zero.
    pub fn nonzeros(&self) -> usize {
        match self {
            Values::Dense(v) => v.iter().filter(|v| **v != 0.0).count(),
            Values::Packed(p) => p.nonzeros(),
        }
    }
}

impl From<Vec<f32>> for Values {
    fn from(v: Vec<f32>) -> Values {
        Values::Dense(v)
    }
}

/// Equal values, however they are held.
impl PartialEq for Values {
    fn eq(&self, other: &Values) -> bool {
        match (self, other) {
            (Values::Packed(a), Values::Packed(b)) if Arc::ptr_eq(a, b) => true,
            (Values::Packed(a), Values::Packed(b)) => a.len == b.len && a.dense() == b.dense(),
            _ => self.len() == other.len() && self.dense() == other.dense(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_values_read_as_their_dense_form_and_materialise_on_change() {
        let dense = vec![0.0, 1.5, 0.0, -0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0];
        let mut v = Values::Packed(Arc::new(Packed::from_dense(&dense)));
        assert_eq!((v.len(), v.nonzeros(), v.packed().map(|p| p.values.len())), (10, 2, Some(3)), "-0.0 is kept, not counted");
        assert_eq!(v.dense().iter().map(|x| x.to_bits()).collect::<Vec<_>>(), dense.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        assert_eq!(v, Values::Dense(dense.clone()));
        v.to_mut()[0] = 3.0;
        assert!(v.packed().is_none() && v.dense()[0] == 3.0 && v.dense()[1] == 1.5);
    }
}
