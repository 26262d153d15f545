//! Pinning client-side threads (the server pins its own through the runtime).

/// Pins the current thread to `core` if given; errors if it does not exist.
pub fn pin_current(core: Option<usize>) -> anyhow::Result<()> {
    let Some(c) = core else { return Ok(()) };
    let n = core_affinity::get_core_ids().map(|v| v.len()).unwrap_or(0);
    anyhow::ensure!(c < n, "core {c} does not exist (this machine has cores 0..{n})");
    anyhow::ensure!(
        core_affinity::set_for_current(core_affinity::CoreId { id: c }),
        "could not pin to core {c}"
    );
    Ok(())
}

/// Number of cores.
pub fn core_count() -> usize {
    core_affinity::get_core_ids().map(|v| v.len()).unwrap_or(1)
}
