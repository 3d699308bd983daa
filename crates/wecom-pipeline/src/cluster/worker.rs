//! A cluster worker: one member of the control topic's consumer group, running the corps of the partitions
//! it is assigned, each in its own task with its own source (token cache, keyring, SDK pool), and stopping
//! them before a revocation completes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use wecom_kafka::{
    ClaimWatch, ControlEvent, ControlMember, KafkaSink, KeyedProducer, MemberSettings,
};

use super::config::{ClusterFile, CorpDef};
use super::owner::Ownership;
use super::status::{now_ms, CorpState, CorpStatus};
use crate::error::PipelineError;
use crate::scope::Scope;
use crate::source::Source;
use crate::stream::{RunOptions, StreamSel};

/// How long a corp may take to stop (in-flight pages finished and committed) before it is abandoned; its
/// claim epoch still fences whatever it would publish later.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// What every corp task of the worker shares.
struct Shared {
    file: ClusterFile,
    worker: String,
    sink: KafkaSink,
    watch: Arc<ClaimWatch>,
}

struct CorpRun {
    partition: i32,
    def: CorpDef,
    stop: CancellationToken,
    task: JoinHandle<()>,
    status: Arc<Mutex<CorpStatus>>,
}

#[derive(Default)]
struct Partition {
    caught_up: bool,
    defs: BTreeMap<String, CorpDef>,
}

/// Runs a worker until `shutdown`: joins the group, runs the assigned corps, leaves the group cleanly
/// (every corp stopped, its last page committed) before returning.
pub async fn run_worker(
    file: ClusterFile,
    shutdown: CancellationToken,
) -> Result<(), PipelineError> {
    let worker = file.worker_id();
    let kafka = file.kafka.clone();
    let k = |e| PipelineError::Kafka {
        corp_id: "-".into(),
        stream: "-".into(),
        source: Box::new(e),
    };
    wecom_kafka::ensure_compacted_topic(
        &kafka,
        &file.cluster.control_topic,
        file.cluster.control_partitions,
    )
    .await
    .map_err(k)?;
    wecom_kafka::ensure_compacted_topic(&kafka, &file.cluster.status_topic, 1)
        .await
        .map_err(k)?;
    // creates the output and cursor topics when allowed
    let sink = KafkaSink::connect(&kafka).await.map_err(k)?;
    let watch = Arc::new(ClaimWatch::start(&kafka).await.map_err(k)?);
    let status_out = KeyedProducer::new(&kafka).map_err(k)?;
    let (tx, mut rx) = mpsc::channel(256);
    let member = ControlMember::join(
        &kafka,
        &MemberSettings {
            topic: file.cluster.control_topic.clone(),
            group_id: file.cluster.group_id.clone(),
            member_name: worker.clone(),
            session_timeout: file.session_timeout(),
            revoke_timeout: STOP_TIMEOUT + Duration::from_secs(5),
        },
        tx,
    )
    .map_err(k)?;
    info!(worker = %worker, group = %file.cluster.group_id, control_topic = %file.cluster.control_topic, fence_wait_ms = file.fence_wait().as_millis() as u64, "cluster worker joined");
    let shared = Arc::new(Shared {
        file,
        worker,
        sink,
        watch,
    });
    let mut w = Worker {
        shared,
        parts: HashMap::new(),
        corps: HashMap::new(),
        status_out,
    };
    let mut tick = tokio::time::interval(STATUS_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => w.publish_statuses().await,
            ev = rx.recv() => match ev {
                Some(ev) => w.handle(ev).await,
                None => {
                    error!("the control topic member stopped; the worker leaves");
                    break;
                }
            },
        }
    }
    info!(worker = %w.shared.worker, corps = w.corps.len(), "cluster worker leaving: stopping its corps");
    let all: Vec<String> = w.corps.keys().cloned().collect();
    w.stop_corps(all).await;
    w.publish_statuses().await;
    // Leaving runs one last revocation through the events: answer them until the member is gone.
    let leave = tokio::task::spawn_blocking(move || member.leave());
    let mut leave = std::pin::pin!(leave);
    loop {
        tokio::select! {
            _ = &mut leave => break,
            ev = rx.recv() => match ev {
                Some(ControlEvent::Revoked { done, .. }) => { let _ = done.send(()); }
                Some(_) => {}
                None => { let _ = (&mut leave).await; break; }
            },
        }
    }
    info!(worker = %w.shared.worker, "cluster worker left the group");
    Ok(())
}

struct Worker {
    shared: Arc<Shared>,
    parts: HashMap<i32, Partition>,
    corps: HashMap<String, CorpRun>,
    status_out: KeyedProducer,
}

impl Worker {
    async fn handle(&mut self, ev: ControlEvent) {
        match ev {
            ControlEvent::Assigned(ps) => {
                info!(worker = %self.shared.worker, partitions = ?ps, "control partitions assigned");
                for p in ps {
                    self.parts.entry(p).or_default();
                }
            }
            ControlEvent::Record {
                partition,
                key,
                value,
            } => {
                let Some(part) = self.parts.get_mut(&partition) else {
                    return;
                };
                match value {
                    None => {
                        part.defs.remove(&key);
                    }
                    Some(v) => match serde_json::from_slice::<CorpDef>(&v) {
                        Ok(def) if def.corp_id == key => {
                            part.defs.insert(key.clone(), def);
                        }
                        Ok(def) => {
                            warn!(partition, key = %key, corp = %def.corp_id, "control record ignored: its key is not its corp id");
                            return;
                        }
                        Err(e) => {
                            warn!(partition, corp = %key, error = %e, "control record ignored: not a corp definition");
                            return;
                        }
                    },
                }
                if part.caught_up {
                    self.reconcile(partition, &key).await;
                }
            }
            ControlEvent::CaughtUp(p) => {
                let Some(part) = self.parts.get_mut(&p) else {
                    return;
                };
                if !part.caught_up {
                    part.caught_up = true;
                    let keys: Vec<String> = part.defs.keys().cloned().collect();
                    for key in keys {
                        self.reconcile(p, &key).await;
                    }
                }
            }
            ControlEvent::Revoked { partitions, done } => {
                let corps: Vec<String> = self
                    .corps
                    .iter()
                    .filter(|(_, r)| partitions.contains(&r.partition))
                    .map(|(c, _)| c.clone())
                    .collect();
                info!(worker = %self.shared.worker, partitions = ?partitions, corps = ?corps, "control partitions revoked: stopping their corps");
                self.stop_corps(corps).await;
                for p in &partitions {
                    self.parts.remove(p);
                }
                self.publish_statuses().await;
                let _ = done.send(());
            }
            ControlEvent::Error(e) => {
                warn!(worker = %self.shared.worker, error = %e, "control topic member")
            }
        }
    }

    /// Brings corp `key` of `partition` to what the partition says: started, restarted with a changed
    /// definition, or stopped (tombstone).
    async fn reconcile(&mut self, partition: i32, key: &str) {
        let wanted = self
            .parts
            .get(&partition)
            .and_then(|p| p.defs.get(key))
            .cloned();
        if let Some(run) = self.corps.get(key) {
            if run.partition != partition {
                warn!(corp = %key, partition, running_from = run.partition, "a corp is defined in two control partitions; the second definition is ignored");
                return;
            }
            if wanted.as_ref() == Some(&run.def) {
                return;
            }
            self.stop_corps(vec![key.to_string()]).await;
            if wanted.is_none() {
                info!(corp = %key, "corp removed (tombstone): stopped");
                if let Err(e) = self
                    .status_out
                    .put(&self.shared.file.cluster.status_topic, None, key, None)
                    .await
                {
                    warn!(corp = %key, error = %e, "cannot delete the removed corp's status");
                }
            }
        }
        if let Some(def) = wanted {
            self.start(partition, def);
        }
    }

    fn start(&mut self, partition: i32, def: CorpDef) {
        let status = Arc::new(Mutex::new(CorpStatus {
            corp_id: def.corp_id.clone(),
            worker: self.shared.worker.clone(),
            state: CorpState::Claiming,
            epoch: 0,
            committed_seq: 0,
            newest_seq: 0,
            lag: 0,
            records: 0,
            dead_letters: 0,
            media_stored: 0,
            media_failed: 0,
            last_error: None,
            updated_ms: now_ms(),
        }));
        let stop = CancellationToken::new();
        info!(worker = %self.shared.worker, corp = %def.corp_id, partition, "corp starting on this worker");
        let task = tokio::spawn(corp_task(
            self.shared.clone(),
            def.clone(),
            stop.clone(),
            status.clone(),
        ));
        self.corps.insert(
            def.corp_id.clone(),
            CorpRun {
                partition,
                def,
                stop,
                task,
                status,
            },
        );
    }

    /// Stops the corps (all at once) and waits for each to finish its in-flight page.
    async fn stop_corps(&mut self, ids: Vec<String>) {
        let runs: Vec<CorpRun> = ids.iter().filter_map(|c| self.corps.remove(c)).collect();
        for r in &runs {
            r.stop.cancel();
        }
        let waits = runs.into_iter().map(|r| async move {
            let corp = r.def.corp_id.clone();
            let mut task = r.task;
            if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
                task.abort();
                warn!(corp = %corp, timeout_secs = STOP_TIMEOUT.as_secs(), "corp did not stop in time: abandoned (its claim epoch fences it)");
            }
            let mut s = r.status.lock().unwrap_or_else(|p| p.into_inner());
            if s.state != CorpState::Fenced {
                s.state = CorpState::Stopped;
            }
            s.updated_ms = now_ms();
            info!(corp = %corp, committed_seq = s.committed_seq, "corp stopped on this worker");
            s.clone()
        });
        let stopped = futures::future::join_all(waits).await;
        for s in stopped {
            self.put_status(&s).await;
        }
    }

    async fn publish_statuses(&self) {
        let all: Vec<CorpStatus> = self
            .corps
            .values()
            .map(|r| r.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect();
        for s in all {
            self.put_status(&s).await;
        }
    }

    async fn put_status(&self, s: &CorpStatus) {
        let Ok(json) = serde_json::to_vec(s) else {
            return;
        };
        if let Err(e) = self
            .status_out
            .put(
                &self.shared.file.cluster.status_topic,
                None,
                &s.corp_id,
                Some(&json),
            )
            .await
        {
            warn!(corp = %s.corp_id, error = %e, "cannot publish the corp's status");
        }
    }
}

/// One corp on this worker until `stop`: claims it, runs it, and after a failure reports it and tries
/// again after a pause (doubling up to 60 s). Nothing here touches another corp.
async fn corp_task(
    shared: Arc<Shared>,
    def: CorpDef,
    stop: CancellationToken,
    status: Arc<Mutex<CorpStatus>>,
) {
    let base = Duration::from_secs(shared.file.cluster.retry_secs.max(1));
    let mut pause = base;
    while !stop.is_cancelled() {
        let result = run_corp(&shared, &def, &stop, &status).await;
        let wait = match result {
            Ok(()) => break,
            Err(e @ PipelineError::Fenced { .. }) => {
                let chain = wecom_model::error_chain(&e);
                warn!(corp = %def.corp_id, error = %chain, "corp fenced: another worker claimed it; stopped here until the group says otherwise");
                set(&status, |s| {
                    s.state = CorpState::Fenced;
                    s.last_error = Some(chain);
                });
                // the group revokes it from this (paused) worker within a heartbeat or two
                shared.file.session_timeout()
            }
            Err(e) => {
                let chain = wecom_model::error_chain(&e);
                error!(corp = %def.corp_id, error = %chain, retry_in_secs = pause.as_secs(), "corp failed; the worker's other corps go on");
                set(&status, |s| {
                    s.state = CorpState::Failing;
                    s.last_error = Some(chain);
                });
                let w = pause;
                pause = (pause * 2).min(Duration::from_secs(60));
                w
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => break,
        }
    }
}

fn set(status: &Mutex<CorpStatus>, f: impl FnOnce(&mut CorpStatus)) {
    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut s);
    s.updated_ms = now_ms();
}

/// One claim and run of the corp, until `stop` (Ok) or a failure.
async fn run_corp(
    shared: &Shared,
    def: &CorpDef,
    stop: &CancellationToken,
    status: &Mutex<CorpStatus>,
) -> Result<(), PipelineError> {
    let cfg = shared.file.corp_config(def)?;
    let corp = cfg.corp_id.clone();
    // a failing corp stays `failing` (with its error) until it runs again
    set(status, |s| {
        if s.state != CorpState::Failing {
            s.state = CorpState::Claiming;
        }
    });
    let Some(owner) = Ownership::claim(
        shared.sink.clone(),
        shared.watch.clone(),
        &corp,
        &StreamSel::Corp.name(),
        &shared.worker,
        shared.file.lease(),
        shared.file.fence_wait(),
        stop,
    )
    .await?
    else {
        return Ok(());
    };
    set(status, |s| s.epoch = owner.epoch());
    // Nothing local survives a move: whatever an earlier run of the corp left here is stale.
    let scratch = cfg.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch)?;
        }
        std::fs::create_dir_all(&scratch)
    })
    .await
    .map_err(|e| PipelineError::internal(&corp, "corp", e))?
    .map_err(|e| {
        PipelineError::Local(wecom_store::StoreError::Io {
            path: cfg.data_dir.clone(),
            source: e,
        })
    })?;
    let source = Source::connect(&cfg).await?;
    let probes: crate::scope::ProbeList = Arc::default();
    let recovered = Arc::new(tokio::sync::Notify::new());
    let scope = Scope {
        owner: Some(Arc::new(owner)),
        probes: Some(probes.clone()),
        recovered: Some(recovered.clone()),
        ..Scope::live(&cfg)?
    };
    let opts = RunOptions {
        stream: StreamSel::Corp,
        follow: true,
        progress: false,
    };
    let run_stop = stop.child_token();
    let mut media = None;
    let mut media_failed = None;
    let result = {
        let mut run = std::pin::pin!(crate::run::run_scoped(
            &cfg,
            &source,
            &opts,
            &scope,
            run_stop.clone()
        ));
        let mut tick = tokio::time::interval(STATUS_EVERY);
        let mut started = false;
        loop {
            tokio::select! {
                r = &mut run => break r,
                () = recovered.notified(), if !started => {
                    started = true;
                    set(status, |s| { s.state = CorpState::Running; s.last_error = None; });
                    match crate::media::start(&cfg, &source, &StreamSel::Corp).await {
                        Ok(m) => media = m,
                        Err(e) => { media_failed = Some(e); run_stop.cancel(); }
                    }
                }
                _ = tick.tick() => report(status, &probes, media.as_ref()),
            }
        }
    };
    report(status, &probes, media.as_ref());
    let media_result = match media {
        Some(m) => m.finish(false).await.map(drop),
        None => Ok(()),
    };
    source.shutdown().await;
    if let Some(e) = media_failed {
        return Err(e);
    }
    result?;
    media_result?;
    Ok(())
}

fn report(
    status: &Mutex<CorpStatus>,
    probes: &crate::scope::ProbeList,
    media: Option<&crate::media::MediaTask>,
) {
    let counts = probes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .first()
        .map(|p| p.counts());
    let m = media.map(crate::media::MediaTask::stats);
    set(status, |s| {
        if let Some(c) = counts {
            s.committed_seq = c.committed;
            s.newest_seq = c.newest;
            s.lag = c.newest.saturating_sub(c.committed);
            s.records = c.records;
            s.dead_letters = c.dead_letters;
        }
        if let Some(m) = m {
            s.media_stored = m.objects_stored_total + m.objects_skipped_total;
            s.media_failed = m.objects_failed_total;
        }
    });
}
