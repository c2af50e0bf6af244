//! The shipped configuration files, `config/priority.toml` and `config/sla.toml`, also as JSON
//! for the functions' start: the same documents, which serde_json reads several times faster
//! than toml reads the TOML, and a start with the shipped files runs no TOML parser at all
//! (`PriorityConfig::default_config`, `SlaPolicy::default_policy`). Tests hold each pair equal.

use std::path::Path;

fn main() {
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ["priority", "sla"] {
        let toml_path = Path::new("../../config").join(format!("{name}.toml"));
        println!("cargo::rerun-if-changed={}", toml_path.display());
        let text = std::fs::read_to_string(&toml_path)
            .unwrap_or_else(|e| panic!("{} is readable: {e}", toml_path.display()));
        let value: toml::Value = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is TOML: {e}", toml_path.display()));
        let json = serde_json::to_string(&value).expect("a TOML document is JSON");
        std::fs::write(Path::new(&out).join(format!("{name}.json")), json)
            .expect("OUT_DIR is writable");
    }
}
