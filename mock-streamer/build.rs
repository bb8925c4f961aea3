//! Builds the C shim over SVT-AV1 (`csrc/svt_av1_shim.c`) against the
//! system's library, found with pkg-config (Debian: `libsvtav1enc-dev`).

fn main() {
    println!("cargo:rerun-if-changed=csrc/svt_av1_shim.c");
    let svt = match pkg_config::Config::new().atleast_version("1.4").probe("SvtAv1Enc") {
        Ok(lib) => lib,
        Err(e) => panic!(
            "SVT-AV1 not found ({e}): install it with `apt-get install -y libsvtav1enc-dev pkg-config` \
             (mock-streamer's AV1 encoder)"
        ),
    };
    let mut build = cc::Build::new();
    build.file("csrc/svt_av1_shim.c").warnings(true);
    for dir in &svt.include_paths {
        build.include(dir);
    }
    build.compile("svt_av1_shim");
}
