//! YCSB core workloads and the bank against a running store: generators, workloads, the client
//! runner and its reports.

pub mod backend;
pub mod bank;
pub mod bank_ledger;
pub mod cli;
pub mod generator;
pub mod guard;
pub mod plot;
pub mod recorder;
pub mod renew;
pub mod report;
pub mod runner;
pub mod workload;

/// What one invocation of `shoal-bench` measured: its load and/or run phase, and for the bank
/// its transfer figures and final check.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchOutput {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub load: Option<report::Summary>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run: Option<report::Summary>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bank: Option<bank::BankResult>,
}

impl BenchOutput {
    pub fn phases(&self) -> impl Iterator<Item = &report::Summary> {
        self.load.iter().chain(self.run.iter())
    }

    /// Failed requests; aborted transactions are not among them.
    pub fn errors(&self) -> u64 {
        self.phases().map(|s| s.errors).sum()
    }

    /// Transactions aborted by write conflicts.
    pub fn aborts(&self) -> u64 {
        self.phases().map(|s| s.aborts).sum()
    }
}
