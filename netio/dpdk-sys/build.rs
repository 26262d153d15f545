//! Finds the system DPDK through pkg-config, generates bindings for the
//! allowlisted API with bindgen, and compiles the fast-path shim with cc.
//!
//! The raw `pkg-config --cflags libdpdk` output is used for both bindgen and
//! cc: DPDK's flags carry `-include rte_config.h` and `-march=...`, which the
//! `pkg-config` crate drops and without which the headers do not compile.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";
const INSTALL_HINT: &str = "install it with: \
     apt-get install -y --no-install-recommends libdpdk-dev pkg-config libclang-dev build-essential \
     (or build without the `dpdk` feature)";

/// Functions bindgen exposes: exactly what `peregrine-netio` calls.
const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_strerror",
    "rte_thread_register",
    "rte_thread_unregister",
    "rte_eth_dev_count_avail",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_macaddr_get",
    "rte_eth_link_get_nowait",
    "rte_eth_promiscuous_enable",
    "rte_eth_stats_get",
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "pg_.*",
];

/// Types used by value from Rust; every other struct stays opaque or absent.
const TYPES: &[&str] = &[
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_eth_link",
    "rte_eth_stats",
    "rte_ether_addr",
    "pg_rx_view",
];

/// Constants: the shim's re-exports plus enums used in `rte_eth_conf`.
const VARS: &[&str] = &["PG_.*", "RTE_ETH_LINK_.*", "RTE_MAX_ETHPORTS"];

fn pkg_config(args: &[&str]) -> Result<String, String> {
    let out = Command::new("pkg-config")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run pkg-config ({e})"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn fail(what: &str) -> ! {
    eprintln!(
        "\n\ndpdk-sys: DPDK >= {MIN_VERSION} not found through pkg-config ({what}).\n\
         dpdk-sys: {INSTALL_HINT}\n"
    );
    panic!("libdpdk >= {MIN_VERSION} not found: {INSTALL_HINT}");
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    let version = pkg_config(&["--modversion", "libdpdk"]).unwrap_or_else(|e| fail(&e));
    if pkg_config(&["--atleast-version", MIN_VERSION, "libdpdk"]).is_err() {
        fail(&format!("found version {version}"));
    }
    let cflags_raw = pkg_config(&["--cflags", "libdpdk"]).unwrap_or_else(|e| fail(&e));
    let libs_raw = pkg_config(&["--libs", "libdpdk"]).unwrap_or_else(|e| fail(&e));
    let cflags: Vec<&str> = cflags_raw.split_whitespace().collect();

    // Link line: -L and -l from pkg-config; other linker flags as link args.
    for flag in libs_raw.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        } else if flag.starts_with("-Wl,") {
            println!("cargo:rustc-link-arg={flag}");
        }
    }
    println!("cargo:version={version}");
    println!("cargo:rustc-env=DPDK_SYS_VERSION={version}");
    println!("cargo:cflags={cflags_raw}");

    // The shim, compiled with DPDK's exact flags.
    let mut build = cc::Build::new();
    build.file("shim.c").include(".").opt_level(3).warnings(true);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("peregrine_dpdk_shim");

    // Bindings over the shim header (which includes the DPDK headers used).
    let mut b = bindgen::Builder::default()
        .header("shim.h")
        .clang_args(cflags.iter().copied())
        .clang_arg("-I.")
        .use_core()
        .layout_tests(false)
        .derive_default(true)
        .derive_debug(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        // Packed/aligned types bindgen cannot lay out; never used by value.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        // Only ever handled by pointer from Rust.
        .opaque_type("rte_mbuf")
        .opaque_type("rte_mempool")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        b = b.allowlist_function(f);
    }
    for t in TYPES {
        b = b.allowlist_type(t);
    }
    for v in VARS {
        b = b.allowlist_var(v);
    }
    let bindings = b
        .generate()
        .unwrap_or_else(|e| panic!("dpdk-sys: bindgen failed on DPDK {version} headers: {e}"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("dpdk-sys: cannot write bindings.rs");
}
