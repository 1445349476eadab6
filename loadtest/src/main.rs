//! `loadtest`: the operator's load generator for Tollgate (SPEC §9).
//!
//! * [`cli`] — the clap scenarios and their flags (every flag also reads an env var).
//! * [`baseline`] — the minimal hyper server a real edge is measured against.
//! * [`cpu`] — server CPU time per request, from `/proc` (Linux).
//! * [`target`] — one HTTP/1 target: URL parsing, request building, connecting.
//! * [`driver`] — closed-loop and open-loop load over keep-alive connections.
//! * [`report`] — results: the table, JSON, percentiles.
//! * [`plot`] — a small hand-written SVG latency-percentile plot.
//! * [`scenario`] — `edge` and `compare`, built from the pieces above.
//! * [`seed`] — `seed`: customers and paid subscriptions through the control plane's API.
//! * [`control_plane`] — `control-plane`: open-loop usage or subscription writes.
//! * [`propagation`] — `propagation`: commit → visible-at-edge latency.
//! * [`sqlite_baseline`] — `sqlite-baseline`: the bare single-row-commit loop the control plane's
//!   group commit is compared with.
//! * [`edge_scale`] — `edge-scale`: memory, snapshot load and speed at 1M customers, against a
//!   stand-in control plane.
//! * [`edge_apps`] — `edge-apps`: OFREP against the baseline, event-stream fan-out to 10,000
//!   subscribers, GET beside them.
//! * [`api`] — a small JSON client for set-up steps (seeding, cards, `/readyz`).

mod api;
mod baseline;
mod cli;
mod control_plane;
mod cpu;
mod driver;
mod edge_apps;
mod edge_scale;
mod plot;
mod propagation;
mod renewals;
mod report;
mod scenario;
mod seed;
mod sqlite_baseline;
mod target;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Baseline(args) => baseline::run_cli(&args),
        Command::Edge(args) => scenario::edge(&args),
        Command::Compare(args) => scenario::compare(&args),
        Command::Seed(args) => seed::run(&args),
        Command::ControlPlane(args) => control_plane::run(&args),
        Command::Propagation(args) => propagation::run(&args),
        Command::SqliteBaseline(args) => sqlite_baseline::run(&args),
        Command::EdgeScale(args) => edge_scale::run(&args),
        Command::EdgeApps(args) => edge_apps::run(&args),
        Command::Renewals(args) => renewals::run(&args),
    }
}
