//! cluster.toml text (`Cluster::parse`). A cluster that parses renders to text that
//! parses back to the same rendering.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use skiff::cluster::{Cluster, render};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("cluster.toml");
    if let Ok(cluster) = Cluster::parse(file, text) {
        let once = render(&cluster);
        let again = Cluster::parse(file, &once).expect("a rendered cluster parses back");
        assert_eq!(render(&again), once);
    }
});
