//! The shipped priority configuration, `config/priority.toml`, also as JSON for the functions'
//! start: the same document, which serde_json reads several times faster than toml reads the
//! TOML (`PriorityConfig::default_config`). A test holds the two equal.

use std::path::Path;

fn main() {
    let toml_path = Path::new("../../config/priority.toml");
    println!("cargo::rerun-if-changed={}", toml_path.display());
    let text = std::fs::read_to_string(toml_path).expect("config/priority.toml is readable");
    let value: toml::Value = toml::from_str(&text).expect("config/priority.toml is TOML");
    let json = serde_json::to_string(&value).expect("a TOML document is JSON");
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out).join("priority.json"), json).expect("OUT_DIR is writable");
}
