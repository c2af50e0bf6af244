//! Embeds each line of standard input and prints the time it took and the first values:
//! `cargo run --release -p switchboard-encoder --example embed -- MODEL < texts.txt`.

use std::io::BufRead;

fn main() {
    let path = std::env::args().nth(1).expect("usage: embed MODEL < texts");
    let start = std::time::Instant::now();
    let encoder = switchboard_encoder::Encoder::open(path.as_ref()).expect("model");
    eprintln!("loaded in {:?}", start.elapsed());
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("a line");
        let start = std::time::Instant::now();
        let e = encoder.embed(&line);
        println!(
            "{:>8.1} ms  {:>4} tokens  [{:.5}, {:.5}, {:.5}, …]",
            start.elapsed().as_secs_f64() * 1000.0,
            encoder.tokens(&line).len() + 2,
            e[0],
            e[1],
            e[2]
        );
    }
}
