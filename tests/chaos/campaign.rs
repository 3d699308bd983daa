//! The campaign's course: the chaos (runs SIGKILLed at random moments, the broker restarted under some of
//! them, the missing key added mid-way), then the end (runs to the end, `redrive` killed once and run again,
//! a last run for the media of the redriven records).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::broker::Broker;
use crate::drive::{Driver, Outage, Outcome};
use crate::plan::{pipeline_config, Plan, Setup};
use crate::verdict::LATE_ADDED_KEY;

pub struct Campaign {
    pub plan: Plan,
    rng: StdRng,
    setup: Setup,
    config: PathBuf,
    pub driver: Driver,
    pub broker: Broker,
    key_added: bool,
    /// Runs of the chaos phase that ended by themselves (a broker outage, a fatal error).
    pub early_exits: u32,
    /// What went wrong in the course itself (not in the outputs).
    pub failures: Vec<String>,
    /// Every item up to this seq was served (live items keep coming after it).
    pub served_up_to: u64,
}

impl Campaign {
    pub fn new(plan: Plan, setup: Setup, dir: &std::path::Path, broker: Broker) -> Self {
        let config = dir.join("pipeline.toml");
        std::fs::write(&config, pipeline_config(&setup, &[LATE_ADDED_KEY])).expect("config");
        let mut driver = Driver::new(&config, &setup.data_dir, &dir.join("logs"));
        driver.note(&format!("keyring without v{LATE_ADDED_KEY}"));
        Campaign {
            rng: StdRng::seed_from_u64(plan.seed),
            plan,
            setup,
            config,
            driver,
            broker,
            key_added: false,
            early_exits: 0,
            failures: Vec::new(),
            served_up_to: 0,
        }
    }

    fn add_key(&mut self, when: &str) {
        std::fs::write(&self.config, pipeline_config(&self.setup, &[])).expect("config");
        self.driver
            .note(&format!("key v{LATE_ADDED_KEY} added{when}"));
        self.key_added = true;
    }

    /// Runs SIGKILLed at random moments until the plan's kills happened; the broker goes down and up again
    /// under a run now and then; the missing key is added half-way.
    pub async fn chaos(&mut self) {
        let plan = self.plan.clone();
        let deadline = Instant::now() + Duration::from_secs(plan.chaos_deadline_secs);
        let mut stalled = 0u64;
        while self.driver.kills < plan.kills && Instant::now() < deadline {
            if !self.key_added && self.driver.kills >= plan.kills / 2 {
                self.add_key("");
            }
            let life = self.rng.gen_range(plan.run_ms.0..=plan.run_ms.1) + stalled.min(12) * 5_000;
            let cursor = self.driver.cursor();
            let restarts = self.broker.restarts;
            let due = restarts < plan.broker_restarts
                && self.driver.kills >= (restarts + 1) * plan.kills / (plan.broker_restarts + 1);
            let outage = due.then(|| Outage {
                at: self.rng.gen_range(0..=life),
                down: self.rng.gen_range(300..=2_500),
            });
            let outcome = self
                .driver
                .run_for("chaos", &["run"], life, outage, &mut self.broker)
                .await;
            if let Outcome::Exited(_) = outcome {
                self.early_exits += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            stalled = if self.driver.cursor() == cursor {
                stalled + 1
            } else {
                0
            };
        }
        if self.driver.kills < plan.kills {
            self.failures.push(format!(
                "only {} of {} kills within {} s: {} runs exited by themselves",
                self.driver.kills, plan.kills, plan.chaos_deadline_secs, self.early_exits
            ));
        }
        if self.broker.restarts < plan.broker_restarts {
            self.failures.push(format!(
                "only {} of {} broker restarts",
                self.broker.restarts, plan.broker_restarts
            ));
        }
    }

    /// The key in any case, runs to the end (three tries), `redrive` killed once at a random moment and run
    /// again to its end, a last run, `verify` of the raw archive; then no process of the campaign may be
    /// left. Every item visible when
    /// the last run starts must be in the outputs after it (`served_up_to`), and so must every item up to
    /// where it caught up.
    pub async fn finish(&mut self, sim: &wecom_sim::SimServer) {
        if !self.key_added {
            self.add_key(" after the chaos");
        }
        let to_end = Duration::from_secs(if self.plan.long { 1_800 } else { 300 });
        let run_to_end = ["run", "--until-caught-up"];
        let mut ok = false;
        for _ in 0..3 {
            ok = self
                .driver
                .run_to_end("final", &run_to_end, to_end)
                .await
                .succeeded();
            if ok {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if !ok {
            self.failures
                .push("the final `run --until-caught-up` failed three times".into());
        }
        let life = self.rng.gen_range(200..=2_500);
        self.driver
            .run_for("redrive", &["redrive"], life, None, &mut self.broker)
            .await;
        if !self
            .driver
            .run_to_end("redrive", &["redrive"], Duration::from_secs(300))
            .await
            .succeeded()
        {
            self.failures.push("`redrive` failed".into());
        }
        let visible = sim.stats().newest_seq;
        let last = self.driver.run_to_end("last", &run_to_end, to_end).await;
        self.served_up_to = visible.max(self.driver.cursor());
        if !last.succeeded() {
            self.failures
                .push("the last `run --until-caught-up` failed".into());
        }
        if !self
            .driver
            .run_to_end("verify", &["verify"], Duration::from_secs(300))
            .await
            .succeeded()
        {
            self.failures
                .push("`verify` finds the raw archive not intact after the kills".into());
        }
        let orphans = self.driver.reap_orphans();
        if !orphans.is_empty() {
            self.failures.push(format!(
                "{} processes left children behind (SDK workers outliving their pipeline)",
                orphans.len()
            ));
        }
    }
}
