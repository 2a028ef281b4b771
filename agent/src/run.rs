//! A party's knowledge of one task's training run: the state hashes it has
//! computed, states it can rebuild (from checkpoints on disk, states it was
//! given, or by replaying from `h_0`), and any step's node outputs.
//!
//! The solver's run lives in a directory (`hashes.bin`, 32 bytes per step,
//! and `ckpt-<step>.safetensors` every `k` steps) and resumes after a crash
//! from its newest valid checkpoint; a verifier's run is in memory.
use crate::exec::{FaultPlan, State, StepOut};
use crate::AgentError;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use train::{Dataset, Hash, Program, Record, StepExecutor, StepGraph, Trainer};

/// In-memory states kept besides `h_0` (the newest ones).
const MAX_ANCHORS: usize = 8;

/// Compute spent by a run (steps executed, including replays).
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    pub steps: u64,
    pub compute_ns: u64,
    pub hash_ns: u64,
}

impl RunStats {
    fn add(&mut self, o: &StepOut) {
        self.steps += 1;
        self.compute_ns += o.compute_ns;
        self.hash_ns += o.hash_ns;
    }
}

pub struct Run {
    pub task_id: u64,
    pub program: Program,
    pub graph: StepGraph,
    pub dataset: Dataset,
    pub fault: FaultPlan,
    dir: Option<PathBuf>,
    every: u64,
    anchors: BTreeMap<u64, Arc<State>>,
    hashes: Vec<Hash>,
    last_out: Option<(u64, Arc<StepOut>)>,
    last_loss: f32,
    /// Compute spent so far.
    pub stats: RunStats,
    backend: Arc<dyn repops::Backend>,
    /// Hashes `h_0..` already in `hashes.bin` (a prefix of `hashes`).
    persisted: usize,
    /// `(t, state after t)` in the backend's memory, on a backend that hashes there:
    /// training goes on from it without moving the state (it comes down for
    /// checkpoints only).
    resident: Option<(u64, train::DeviceState)>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("task_id", &self.task_id)
            .field("steps_done", &self.steps_done())
            .finish()
    }
}

fn ckpt_path(dir: &Path, t: u64) -> PathBuf {
    dir.join(format!("ckpt-{t:08}.safetensors"))
}

impl Run {
    /// A run at `h_0`, in memory only. `initial`: the committed state a fine-tune
    /// starts from (`Fetcher::resolve_initial`); `None` for a seed program.
    pub fn in_memory(
        task_id: u64,
        program: Program,
        dataset: Dataset,
        initial: Option<State>,
        fault: FaultPlan,
    ) -> Result<Run, AgentError> {
        let graph = program.graph()?;
        let cpu: Arc<dyn repops::Backend> = Arc::new(repops::CpuBackend);
        let tr = match initial {
            Some(s) => Trainer::from_initial(program.clone(), dataset.clone(), cpu, s)?,
            None => Trainer::with_backend(program.clone(), dataset.clone(), cpu)?,
        };
        // The trainer's h_0: a merge's is over its inputs' roots, not its tensors.
        let h0 = tr.state_hash();
        let s0 = tr.state().clone();
        Ok(Run {
            task_id,
            program,
            graph,
            dataset,
            fault,
            dir: None,
            every: 0,
            anchors: BTreeMap::from([(0, Arc::new(s0))]),
            hashes: vec![h0],
            last_out: None,
            last_loss: f32::NAN,
            stats: RunStats::default(),
            backend: Arc::new(repops::CpuBackend),
            persisted: 0,
            resident: None,
        })
    }

    /// A run kept in `dir` with a checkpoint every `every` steps (and after the
    /// last). Resumes from what `dir` holds: hashes up to the newest checkpoint
    /// that loads and matches its recorded hash; anything after it is redone.
    pub fn on_disk(
        task_id: u64,
        program: Program,
        dataset: Dataset,
        initial: Option<State>,
        fault: FaultPlan,
        dir: &Path,
        every: u64,
    ) -> Result<Run, AgentError> {
        std::fs::create_dir_all(dir).map_err(|e| AgentError::io(dir, e))?;
        let mut run = Run::in_memory(task_id, program, dataset, initial, fault)?;
        run.dir = Some(dir.to_path_buf());
        run.every = every.max(1);
        let hp = dir.join("hashes.bin");
        let stored: Vec<Hash> = match std::fs::read(&hp) {
            Ok(b) => b
                .chunks_exact(32)
                .map(|c| {
                    let mut h = [0u8; 32];
                    h.copy_from_slice(c);
                    h
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(AgentError::io(&hp, e)),
        };
        let mut resumed = 0u64;
        if stored.first() == run.hashes.first() {
            for t in (1..stored.len() as u64).rev() {
                let p = ckpt_path(dir, t);
                let Ok(bytes) = std::fs::read(&p) else {
                    continue;
                };
                match train::checkpoint::decode(&run.program, &run.graph.state_shapes, &bytes) {
                    Ok((step, state))
                        if step == t && train::state_hash(&state) == stored[t as usize] =>
                    {
                        run.anchors.insert(t, Arc::new(state));
                        resumed = t;
                        break;
                    }
                    Ok(_) | Err(_) => {
                        tracing::warn!(task = task_id, step = t, path = %p.display(),
                            "checkpoint does not load or does not match; trying an older one");
                    }
                }
            }
            run.hashes = stored[..=resumed as usize].to_vec();
            // The file's first records are these hashes: keep them, cut the rest.
            run.persisted = run.hashes.len();
        }
        run.write_hashes()?;
        if resumed > 0 {
            tracing::info!(task = task_id, step = resumed, "resumed from checkpoint");
        }
        Ok(run)
    }

    /// Appends the hashes not yet on disk to `hashes.bin` (O(T) bytes written over
    /// a run, not a rewrite per checkpoint). Whatever the file holds past what this
    /// run persisted is cut first: a record torn by a crash, or hashes of steps
    /// redone after resuming from an older checkpoint.
    fn write_hashes(&mut self) -> Result<(), AgentError> {
        use std::io::{Seek, SeekFrom};
        let Some(dir) = &self.dir else { return Ok(()) };
        let hp = dir.join("hashes.bin");
        let io = |e| AgentError::io(&hp, e);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&hp)
            .map_err(io)?;
        f.set_len(self.persisted as u64 * 32).map_err(io)?;
        f.seek(SeekFrom::End(0)).map_err(io)?;
        let body: Vec<u8> = self.hashes[self.persisted.min(self.hashes.len())..]
            .iter()
            .flatten()
            .copied()
            .collect();
        f.write_all(&body).and_then(|_| f.sync_data()).map_err(io)?;
        self.persisted = self.hashes.len();
        Ok(())
    }

    /// Step `t` from `state` (the state after `t - 1`), with this run's fault plan.
    fn step(&self, t: u64, state: &State, record: Record) -> Result<StepOut, AgentError> {
        let exec = StepExecutor::new(&self.program, &self.graph, &self.dataset, &*self.backend);
        Ok(exec.run(t, state, record, &self.fault)?.into())
    }

    /// Runs the steps on `backend` from now on (the CPU reference by default).
    pub fn set_backend(&mut self, backend: Arc<dyn repops::Backend>) {
        self.backend = backend;
        self.resident = None;
    }

    /// Steps trained so far (`t` of the newest known `h_t`).
    pub fn steps_done(&self) -> u64 {
        self.hashes.len() as u64 - 1
    }

    /// The known hashes `h_0..h_done`.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    pub fn last_loss(&self) -> f32 {
        self.last_loss
    }

    /// Trains the next step; checkpoints when due. Returns `(t, h_t, loss)`.
    pub fn train_next(&mut self) -> Result<(u64, Hash, f32), AgentError> {
        let t = self.steps_done() + 1;
        if t > self.program.steps {
            return Err(AgentError::Invalid(format!(
                "task {} is already trained ({} steps)",
                self.task_id, self.program.steps
            )));
        }
        let checkpoint =
            self.dir.is_some() && (t.is_multiple_of(self.every) || t == self.program.steps);
        let out =
            if self.backend.digests_on_device() && !train::StepHook::alters_state(&self.fault, t) {
                self.train_on_device(t, checkpoint)?
            } else {
                self.resident = None;
                let prev = self.state_at(t - 1)?;
                let mut out = self.step(t, &prev, Record::STATE)?;
                self.remember(t, Arc::new(std::mem::take(&mut out.state)));
                out
            };
        let h = out.state_hash;
        self.stats.add(&out);
        self.last_loss = out.loss;
        self.hashes.push(h);
        if let Some(dir) = self.dir.clone() {
            if checkpoint {
                let state = self.state_at(t)?;
                let bytes = train::checkpoint::encode(&self.program, t, &state)?;
                let p = ckpt_path(&dir, t);
                crate::write_file_atomic(&p, &bytes)?;
                self.write_hashes()?;
            }
        }
        Ok((t, h, out.loss))
    }

    /// Step `t` with the state kept on the device (from the previous step's resident
    /// state when there is one) and hashed there; the state comes down only when
    /// `download` (a checkpoint is due), and is then remembered.
    fn train_on_device(&mut self, t: u64, download: bool) -> Result<StepOut, AgentError> {
        let resident = match self.resident.take() {
            Some((k, d)) if k == t - 1 => Some(d),
            _ => None,
        };
        let prev = match resident {
            Some(_) => None,
            None => Some(self.state_at(t - 1)?),
        };
        let exec = StepExecutor::new(&self.program, &self.graph, &self.dataset, &*self.backend);
        let record = Record {
            host_state: false,
            ..Record::STATE
        };
        let (out, dev) =
            exec.run_resident(t, prev.as_deref(), resident.as_ref(), record, &self.fault)?;
        if download {
            let state = train::exec::download_all(&*self.backend, &dev)
                .map_err(train::TrainError::Transfer)?;
            self.remember(t, Arc::new(state));
        }
        self.resident = Some((t, dev));
        Ok(out.into())
    }

    fn remember(&mut self, t: u64, s: Arc<State>) {
        self.anchors.insert(t, s);
        while self.anchors.len() > MAX_ANCHORS + 1 {
            // Keep h_0 and the newest; drop the oldest of the rest.
            let Some(k) = self.anchors.keys().copied().find(|&k| k != 0) else {
                break;
            };
            self.anchors.remove(&k);
        }
    }

    /// The newest step at or before `t` whose state is held in memory (a
    /// replay to `t` starts there).
    pub fn nearest_state(&self, t: u64) -> u64 {
        self.anchors.range(..=t).next_back().map_or(0, |(k, _)| *k)
    }

    /// Adds a state this party trusts (e.g. a checkpoint whose hash it checked).
    pub fn add_state(&mut self, t: u64, state: State) {
        self.remember(t, Arc::new(state));
    }

    /// The state after step `t`, rebuilt from the nearest earlier state in
    /// memory or on disk.
    pub fn state_at(&mut self, t: u64) -> Result<Arc<State>, AgentError> {
        if t > self.program.steps {
            return Err(AgentError::Invalid(format!(
                "step {t} is past the last step {}",
                self.program.steps
            )));
        }
        let (mut from, mut state) = match self.anchors.range(..=t).next_back() {
            Some((k, s)) => (*k, s.clone()),
            None => return Err(AgentError::Invalid("no initial state".into())),
        };
        if let Some(dir) = &self.dir {
            // A checkpoint on disk may be nearer than anything in memory.
            // Only one whose state hashes to the recorded h_c counts: a file
            // corrupted on disk must not become a wrong state this party
            // serves, posts or disputes with (it replays instead).
            let mut c = t - t % self.every;
            while c > from {
                if let Ok(bytes) = std::fs::read(ckpt_path(dir, c)) {
                    match train::checkpoint::decode_hashed(
                        &self.program,
                        &self.graph.state_shapes,
                        &bytes,
                    ) {
                        Ok((step, s, h)) if step == c && self.hashes.get(c as usize) == Some(&h) => {
                            from = c;
                            state = Arc::new(s);
                            break;
                        }
                        _ => tracing::warn!(task = self.task_id, step = c,
                            "checkpoint on disk does not match its recorded hash; replaying past it"),
                    }
                }
                c = c.saturating_sub(self.every);
            }
        }
        for s in from + 1..=t {
            let out = self.step(s, &state, Record::NOTHING)?;
            self.stats.add(&out);
            state = Arc::new(out.state);
        }
        if t != from {
            self.remember(t, state.clone());
        }
        Ok(state)
    }

    /// Step `t`'s node outputs, from the state after `t - 1`.
    pub fn step_out(&mut self, t: u64) -> Result<Arc<StepOut>, AgentError> {
        if t == 0 {
            return Err(AgentError::Invalid("step 0 has no operators".into()));
        }
        if let Some((k, o)) = &self.last_out {
            if *k == t {
                return Ok(o.clone());
            }
        }
        let prev = self.state_at(t - 1)?;
        let out = Arc::new(self.step(t, &prev, Record::ALL)?);
        self.stats.add(&out);
        self.last_out = Some((t, out.clone()));
        Ok(out)
    }

    /// `h_t`: known, or computed.
    pub fn hash(&mut self, t: u64) -> Result<Hash, AgentError> {
        if let Some(h) = self.hashes.get(t as usize) {
            return Ok(*h);
        }
        Ok(train::state_hash(&*self.state_at(t)?))
    }

    /// The state after step `t` as checkpoint bytes.
    pub fn checkpoint(&mut self, t: u64) -> Result<Vec<u8>, AgentError> {
        let s = self.state_at(t)?;
        Ok(train::checkpoint::encode(&self.program, t, &s)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repops::conformance::HashingDevice;
    use std::sync::atomic::Ordering;

    /// On a backend that hashes where its tensors live, the state stays there between
    /// checkpoints (only the loss comes down), the hashes are the CPU's, checkpoints
    /// hold the committed states, and a dispute's replay still works.
    #[test]
    fn on_a_hashing_device_the_state_comes_down_only_for_checkpoints() {
        let mut p = Program::builtin("mlp-digits").unwrap();
        p.steps = 12;
        let ds = Dataset::builtin("digits").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cpu = Run::in_memory(1, p.clone(), ds.clone(), None, FaultPlan::default()).unwrap();
        while cpu.steps_done() < 12 {
            cpu.train_next().unwrap();
        }
        let dev = Arc::new(HashingDevice::default());
        let mut r =
            Run::on_disk(1, p.clone(), ds, None, FaultPlan::default(), dir.path(), 5).unwrap();
        r.set_backend(dev.clone());
        while r.steps_done() < 12 {
            r.train_next().unwrap();
        }
        assert_eq!(r.hashes(), cpu.hashes());
        let state: u64 = r
            .graph
            .state_shapes
            .values()
            .map(|s| s.iter().product::<usize>() as u64)
            .sum();
        // Checkpoints at 5, 10 and 12; a loss (one element) every step.
        assert_eq!(dev.downloaded.load(Ordering::Relaxed), 3 * state + 12);
        for t in [5, 10, 12] {
            let bytes = std::fs::read(ckpt_path(dir.path(), t)).unwrap();
            let (step, s) = train::checkpoint::decode(&p, &r.graph.state_shapes, &bytes).unwrap();
            assert_eq!((step, train::state_hash(&s)), (t, cpu.hashes()[t as usize]));
        }
        assert_eq!(
            r.step_out(7).unwrap().node_hashes(),
            cpu.step_out(7).unwrap().node_hashes()
        );
        assert_eq!(train::state_hash(&r.state_at(8).unwrap()), cpu.hashes()[8]);
    }

    /// `hashes.bin` is appended at each checkpoint, and a resume cuts what its
    /// newest valid checkpoint does not cover (including a record torn by a
    /// crash), so the file always ends up as the run's hashes.
    #[test]
    fn the_hash_file_is_appended_and_cut_back_on_resume() {
        let mut p = Program::builtin("mlp-digits").unwrap();
        p.steps = 20;
        let ds = Dataset::builtin("digits").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let hp = dir.path().join("hashes.bin");
        let mut r = Run::on_disk(
            1,
            p.clone(),
            ds.clone(),
            None,
            FaultPlan::default(),
            dir.path(),
            5,
        )
        .unwrap();
        for _ in 0..13 {
            r.train_next().unwrap();
        }
        // Checkpoints at 5 and 10: the file holds h_0..h_10.
        assert_eq!(std::fs::metadata(&hp).unwrap().len(), 11 * 32);
        let all: Vec<Hash> = {
            let mut full =
                Run::in_memory(1, p.clone(), ds.clone(), None, FaultPlan::default()).unwrap();
            while full.steps_done() < 20 {
                full.train_next().unwrap();
            }
            full.hashes().to_vec()
        };
        assert_eq!(r.hashes(), &all[..14]);
        // A crash: a torn record at the end, and the newest checkpoint lost.
        drop(r);
        let mut f = std::fs::OpenOptions::new().append(true).open(&hp).unwrap();
        f.write_all(&[0xab; 10]).unwrap();
        std::fs::remove_file(ckpt_path(dir.path(), 10)).unwrap();
        let mut r = Run::on_disk(1, p, ds, None, FaultPlan::default(), dir.path(), 5).unwrap();
        assert_eq!(r.steps_done(), 5, "resumed from step 5");
        assert_eq!(std::fs::metadata(&hp).unwrap().len(), 6 * 32, "cut back");
        while r.steps_done() < 20 {
            r.train_next().unwrap();
        }
        let body = std::fs::read(&hp).unwrap();
        let on_disk: Vec<Hash> = body
            .chunks_exact(32)
            .map(|c| <[u8; 32]>::try_from(c).unwrap())
            .collect();
        assert_eq!(on_disk, all);
    }

    /// A checkpoint file corrupted on disk (a value flipped, still finite)
    /// is not used: the run replays past it and serves the committed state.
    #[test]
    fn a_checkpoint_corrupted_on_disk_is_replayed_past_not_served() {
        let mut p = Program::builtin("mlp-digits").unwrap();
        p.steps = 12;
        let ds = Dataset::builtin("digits").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut r = Run::on_disk(
            1,
            p.clone(),
            ds.clone(),
            None,
            FaultPlan::default(),
            dir.path(),
            5,
        )
        .unwrap();
        while r.steps_done() < 12 {
            r.train_next().unwrap();
        }
        let want = r.hashes()[7];
        let f = ckpt_path(dir.path(), 5);
        let mut bytes = std::fs::read(&f).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 0x01;
        std::fs::write(&f, &bytes).unwrap();
        // A fresh view of the same directory (as after a restart) holds only
        // h_0 in memory, so step 7 comes from disk or replay.
        let mut fresh = Run::in_memory(1, p.clone(), ds, None, FaultPlan::default()).unwrap();
        fresh.dir = Some(dir.path().to_path_buf());
        fresh.every = 5;
        fresh.hashes = r.hashes().to_vec();
        let ck = fresh.checkpoint(7).unwrap();
        let (step, _, h) =
            train::checkpoint::decode_hashed(&p, &p.graph().unwrap().state_shapes, &ck).unwrap();
        assert_eq!((step, h), (7, want));
    }
}
