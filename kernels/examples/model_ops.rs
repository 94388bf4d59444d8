//! Lists the ops of a model's decluttered tract graph for one input shape:
//! what the runtime's lowering (`kernels/src/runtime/lower.rs`) must cover.
//! usage: cargo run -p dajia-kernels --example model_ops -- MODEL.onnx N,C,H,W [--nodes]
use std::collections::BTreeMap;

use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let shape: Vec<usize> = args[2].split(',').map(|d| d.parse().unwrap()).collect();
    let mut m = tract_onnx::onnx().model_for_path(&args[1])?;
    m.set_input_fact(0, f32::fact(&shape).into())?;
    let typed = m.into_typed()?.into_decluttered()?;
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for id in typed.eval_order()? {
        let node = typed.node(id);
        let name = node.op.name().to_string();
        *count.entry(name.clone()).or_default() += 1;
        if args.iter().any(|a| a == "--nodes") {
            let ins: Vec<String> = node
                .inputs
                .iter()
                .map(|i| format!("{}{:?}", i.node, typed.outlet_fact(*i).unwrap().shape))
                .collect();
            println!(
                "{id} {name} [{}] in {} -> {:?}",
                node.op.info()?.join("; "),
                ins.join(" "),
                node.outputs[0].fact.shape
            );
        }
    }
    for (k, v) in count {
        println!("{v:4} {k}");
    }
    Ok(())
}
