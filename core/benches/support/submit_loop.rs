//! The workload shared by the pool benches and `examples/pool_profile.rs`:
//! `submitters` tasks on the shared runtime, each submitting and awaiting
//! `per_submitter` chat requests back to back through `gw`.

use std::sync::Arc;

use bifrost_core::{Gateway, Request};

/// Runs the workload to completion from a non-runtime thread.
pub fn submit_await(gw: &Arc<Gateway>, submitters: u64, per_submitter: u64) {
    let rt = bifrost_core::runtime::handle().expect("runtime");
    let gw = gw.clone();
    rt.block_on(async move {
        let tasks: Vec<_> = (0..submitters)
            .map(|_| {
                let gw = gw.clone();
                tokio::spawn(async move {
                    let req = Request::new("mock/m", "hi");
                    for _ in 0..per_submitter {
                        gw.chat(req.clone()).await.expect("mock chat");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("submitter");
        }
    })
}
