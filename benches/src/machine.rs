//! A description of the machine a run happened on, printed above the table: figures mean little
//! without it.

use std::fmt;
use std::process::Command;

/// The machine and toolchain of this run. Anything that cannot be found reads "unknown".
#[derive(Debug, Clone)]
pub struct Machine {
    cpu: String,
    cores: usize,
    memory: String,
    os: String,
    rustc: String,
}

impl Machine {
    /// Reads /proc/cpuinfo, /proc/meminfo, /etc/os-release and `rustc --version`.
    pub fn detect() -> Self {
        let cpu = read("/proc/cpuinfo")
            .and_then(|text| field(&text, "model name", ':'))
            .unwrap_or_else(|| "unknown".to_string());
        let memory = read("/proc/meminfo")
            .and_then(|text| field(&text, "MemTotal", ':'))
            .and_then(|total| total.trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or_else(|| "unknown".to_string(), |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0));
        let os = read("/etc/os-release")
            .and_then(|text| field(&text, "PRETTY_NAME", '='))
            .map(|name| name.trim_matches('"').to_string())
            .map_or_else(|| std::env::consts::OS.to_string(), |name| format!("{name} ({})", std::env::consts::ARCH));
        let rustc = Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map_or_else(|| "unknown".to_string(), |out| String::from_utf8_lossy(&out.stdout).trim().to_string());
        Self { cpu, cores: std::thread::available_parallelism().map_or(0, usize::from), memory, os, rustc }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "* CPU: {}, {} cores available", self.cpu, self.cores)?;
        writeln!(f, "* memory: {}", self.memory)?;
        writeln!(f, "* OS: {}", self.os)?;
        write!(f, "* rustc: {}", self.rustc)
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The value of the first `name<separator>value` line of `text`.
fn field(text: &str, name: &str, separator: char) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(separator)?;
        (key.trim() == name).then(|| value.trim().to_string())
    })
}
