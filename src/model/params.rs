//! Walking a module's tensors by name: parameter counts and checkpoint (de)serialisation.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use std::collections::BTreeMap;

/// Field names of BatchNorm running statistics: state, not trainable parameters.
const RUNNING_STATS: [&str; 2] = ["running_mean", "running_var"];

/// A float tensor of a module with its dotted path (e.g. `blocks.0.conv1.weight`).
#[derive(Debug, Clone)]
pub struct NamedTensor {
    /// Dotted module path of the tensor.
    pub name: String,
    /// Its values and shape.
    pub data: TensorData,
}

/// Number of trainable parameters — what the demo prints as `Number of parameters:`
/// (BatchNorm running statistics are buffers, not parameters, and are not counted).
pub fn trainable_param_count<M: Module>(module: &M) -> usize {
    named_shapes(module)
        .into_iter()
        .filter(|(name, _)| !is_running_stat(name))
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum()
}

/// Whether the tensor at `name` is a running statistic rather than a trainable parameter.
pub fn is_running_stat(name: &str) -> bool {
    RUNNING_STATS.iter().any(|s| name.rsplit('.').next() == Some(s))
}

/// Every float tensor of `module` (parameters and running statistics), in visiting order.
pub fn named_tensors<M: Module>(module: &M) -> Vec<NamedTensor> {
    let mut visitor = Collect { path: Vec::new(), out: Vec::new(), read_values: true };
    module.visit(&mut visitor);
    visitor.out.into_iter().filter_map(|(name, _, data)| Some(NamedTensor { name, data: data? })).collect()
}

/// Names and shapes of every float tensor, without reading values.
pub fn named_shapes<M: Module>(module: &M) -> Vec<(String, Vec<usize>)> {
    let mut visitor = Collect { path: Vec::new(), out: Vec::new(), read_values: false };
    module.visit(&mut visitor);
    visitor.out.into_iter().map(|(name, shape, _)| (name, shape)).collect()
}

/// Replaces every float tensor of `module` by the one of the same name in `tensors`.
///
/// Fails, naming the tensor, when one is missing or has another shape, or when `tensors` holds
/// names the module does not have, so a checkpoint of another architecture is refused.
pub fn load_named_tensors<M: Module>(module: M, mut tensors: BTreeMap<String, TensorData>) -> anyhow::Result<M> {
    let mut mapper = Replace { path: Vec::new(), tensors: &mut tensors, error: None };
    let module = module.map(&mut mapper);
    if let Some(error) = mapper.error {
        anyhow::bail!(error);
    }
    if let Some(extra) = tensors.keys().next() {
        anyhow::bail!("tensor {extra:?} does not belong to this model");
    }
    Ok(module)
}

/// Visitor gathering (path, shape, values if asked) of every float tensor.
struct Collect {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, Option<TensorData>)>,
    read_values: bool,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = self.read_values.then(|| param.val().into_data());
        let shape = param.lazy_shape().to_vec();
        self.out.push((self.path.join("."), shape, values));
    }
}

/// Mapper swapping each float tensor for the named one from a checkpoint.
struct Replace<'a> {
    path: Vec<String>,
    tensors: &'a mut BTreeMap<String, TensorData>,
    error: Option<String>,
}

impl ModuleMapper for Replace<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        let (id, tensor, mapper) = param.consume();
        let Some(data) = self.tensors.remove(&name) else {
            self.error.get_or_insert(format!("tensor {name:?} is missing"));
            return Param::from_mapped_value(id, tensor, mapper);
        };
        if data.shape().to_vec() != tensor.dims().to_vec() {
            self.error.get_or_insert(format!(
                "tensor {name:?} has shape {:?}, the model expects {:?}",
                data.shape().to_vec(),
                tensor.dims()
            ));
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let require_grad = tensor.is_require_grad();
        let mut loaded = Tensor::<D>::from_data(data, &tensor.device());
        if require_grad {
            loaded = loaded.require_grad();
        }
        Param::from_mapped_value(id, loaded, mapper)
    }
}
