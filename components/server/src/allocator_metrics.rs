//! jemalloc's own accounting as Prometheus gauges, for a process whose global allocator is
//! jemalloc (`shoal-server` built with the default `jemalloc` feature).
//!
//! The process's resident set (`process_resident_memory_bytes`) cannot tell memory the store
//! holds from pages jemalloc keeps after they were freed. These gauges can:
//! `shoal_allocator_bytes{kind=...}` with, in bytes (jemalloc's `stats.*` mallctls):
//! - `allocated`: what live allocations asked for;
//! - `active`: whole pages holding live allocations (`allocated` plus size-class rounding);
//! - `resident`: pages jemalloc has touched and not given back: `active`, its metadata and
//!   dirty pages freed but not yet purged;
//! - `mapped`: address space in active extents;
//! - `retained`: address space given back to the kernel but kept mapped for reuse;
//! - `metadata`: jemalloc's own bookkeeping.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};
use tikv_jemalloc_ctl::{epoch, stats};

/// Reads jemalloc's statistics on every scrape (advancing its stats epoch first, since
/// jemalloc only refreshes the numbers it reports when asked to).
pub struct AllocatorCollector {
    bytes: IntGaugeVec,
}

impl AllocatorCollector {
    /// A collector for `shoal_allocator_bytes`; register it once per process.
    pub fn new() -> prometheus::Result<Self> {
        let bytes = IntGaugeVec::new(
            Opts::new(
                "shoal_allocator_bytes",
                "jemalloc's statistics in bytes, by kind (allocated, active, resident, mapped, \
                 retained, metadata)",
            ),
            &["kind"],
        )?;
        Ok(AllocatorCollector { bytes })
    }

    fn refresh(&self) -> Result<(), tikv_jemalloc_ctl::Error> {
        epoch::advance()?;
        let readings = [
            ("allocated", stats::allocated::read()?),
            ("active", stats::active::read()?),
            ("resident", stats::resident::read()?),
            ("mapped", stats::mapped::read()?),
            ("retained", stats::retained::read()?),
            ("metadata", stats::metadata::read()?),
        ];
        for (kind, value) in readings {
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            self.bytes.with_label_values(&[kind]).set(value);
        }
        Ok(())
    }
}

impl Collector for AllocatorCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.bytes.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        if let Err(e) = self.refresh() {
            // The last readings stay; a scrape never fails because of the allocator.
            tracing::warn!("jemalloc statistics unavailable: {e}");
        }
        self.bytes.collect()
    }
}

/// Registers [`AllocatorCollector`] with the default registry, once per process. Call it only
/// from a binary whose `#[global_allocator]` is jemalloc: in any other process jemalloc's
/// statistics describe an allocator nothing uses.
pub fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let registered = AllocatorCollector::new().and_then(|c| prometheus::register(Box::new(c)));
        if let Err(e) = registered {
            tracing::warn!("allocator metrics unavailable: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use std::alloc::GlobalAlloc;

    use super::*;

    /// Whatever allocator the test process uses, jemalloc's statistics read without error
    /// and keep their order: live bytes fit in active pages, active pages in resident ones.
    #[test]
    fn readings_are_ordered() {
        // Allocate through jemalloc itself so its arenas hold something.
        let layout = std::alloc::Layout::from_size_align(1 << 20, 8).expect("valid layout");
        let held = unsafe { tikv_jemallocator::Jemalloc.alloc_zeroed(layout) };
        assert!(!held.is_null());
        let collector = AllocatorCollector::new().expect("metric builds");
        collector.refresh().expect("jemalloc statistics read");
        let read = |kind: &str| collector.bytes.with_label_values(&[kind]).get();
        assert!(
            read("allocated") >= 1 << 20,
            "allocated {}",
            read("allocated")
        );
        assert!(read("active") >= read("allocated"));
        assert!(read("resident") >= read("active"));
        assert!(read("mapped") >= read("active"));
        assert_eq!(collector.collect().len(), 1);
        unsafe { tikv_jemallocator::Jemalloc.dealloc(held, layout) };
    }
}
