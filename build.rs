//! Link the `cachepot` executable as a position-dependent (non-PIE) program on Linux. A compile hit
//! is a few milliseconds of which start-up is a large share: a PIE binary of this size carries
//! ~6,300 relative relocations that the dynamic loader applies on every start (12 % of a small C
//! hit's instructions) and that dirty the pages they touch (~25 page faults a call). A non-PIE
//! binary has none. Only the bin targets get the flag (`rustc-link-arg-bins`): build scripts and
//! proc-macros of this build are untouched, and the objects stay position-independent code.
//! The price: the main binary is always mapped at the same address (libraries, heap, stack and
//! mmaps stay randomised), so its code is not hidden by ASLR.
//! install.sh builds with `+crt-static` and `relocation-model=static` instead (a static non-PIE
//! executable, no dynamic loader at all): rustc then links it itself, and `-no-pie` next to its
//! `-static` would give a broken executable, so it is not added.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // install.sh links with this symbol order: a new order relinks.
    println!("cargo:rerun-if-changed=pkg/hot-symbols.txt");
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") && !static_crt {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
