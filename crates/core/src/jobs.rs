//! Jobs and the queue (`spec/scheduler-and-cluster.md`): job states and their transitions, the
//! effective priority rule, and the queue order — priority 0..100, higher first, first in first
//! out within a level — kept as an in-memory index that chooses the next job to launch.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use crate::names::named_enum;
use crate::user::limits;

named_enum! {
    /// Where a job is in its life.
    pub enum JobStatus {
        Building = "building",
        Queued = "queued",
        Launched = "launched",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Killed = "killed",
    }
}

impl JobStatus {
    /// Finished one way or another.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Killed
        )
    }

    /// Whether a job may go from `self` to `to`. Clearing takes any non-active job back to
    /// building; killing applies to queued, launched and running jobs.
    pub const fn can_become(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Building | Completed | Failed | Killed, Queued)
                | (Queued, Launched | Failed)
                | (Launched, Running)
                | (Launched | Running, Completed | Failed)
                | (Queued | Launched | Running, Killed)
                | (Completed | Failed | Killed, Building)
        )
    }
}

named_enum! {
    /// Why a queued job is not running yet (CryoSPARC v5's queue states).
    pub enum QueueState {
        ActivelyQueued = "actively_queued",
        WaitingResources = "waiting_resources",
        WaitingMaintenance = "waiting_maintenance",
        WaitingCluster = "waiting_cluster",
    }
}

named_enum! {
    /// What a job does.
    pub enum JobType {
        ImportMovies = "import_movies",
        ImportMicrographs = "import_micrographs",
        Command = "command",
        Validation = "validation",
    }
}

impl JobType {
    pub const fn is_import(self) -> bool {
        matches!(self, JobType::ImportMovies | JobType::ImportMicrographs)
    }
}

/// The facts the effective priority depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PriorityFacts {
    /// The value asked for on the job, if any.
    pub requested: Option<i64>,
    /// The creator holds job-priority management (admins always do).
    pub may_set_priority: bool,
    /// The creator's own default priority, if set.
    pub user_default: Option<i64>,
    /// The instance default.
    pub instance_default: i64,
}

/// The priority a job is queued with: the job's own value only if its creator may set
/// priorities, else the creator's default, else the instance default (0 when nothing is set).
/// The answer is clamped to 0..=100.
pub fn effective_priority(f: PriorityFacts) -> i64 {
    let value = match (f.may_set_priority, f.requested, f.user_default) {
        (true, Some(p), _) => p,
        (_, _, Some(d)) => d,
        _ => f.instance_default,
    };
    value.clamp(0, limits::PRIORITY_MAX)
}

/// A queued job as the queue index knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueuedJob {
    pub priority: i64,
    /// Order of entry into the queue; a re-queued job takes a new number, so it does not jump
    /// ahead of jobs that waited meanwhile.
    pub seq: i64,
    pub job: i64,
    pub lane: i64,
}

type Key = (Reverse<i64>, i64, i64);

fn key(j: &QueuedJob) -> Key {
    (Reverse(j.priority), j.seq, j.job)
}

/// The queue's order, per lane: O(log n) to add or remove, and the next job in O(log n) per
/// lane. The database stays the record; this index is rebuilt from it at start.
#[derive(Clone, Debug, Default)]
pub struct QueueIndex {
    lanes: BTreeMap<i64, BTreeSet<Key>>,
    lane_of: BTreeMap<i64, QueuedJob>,
}

impl QueueIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.lane_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lane_of.is_empty()
    }

    /// Adds a job (replacing any earlier entry of the same job).
    pub fn push(&mut self, j: QueuedJob) {
        self.remove(j.job);
        self.lanes.entry(j.lane).or_default().insert(key(&j));
        self.lane_of.insert(j.job, j);
    }

    /// Removes a job; true if it was there.
    pub fn remove(&mut self, job: i64) -> bool {
        match self.lane_of.remove(&job) {
            Some(j) => {
                if let Some(set) = self.lanes.get_mut(&j.lane) {
                    set.remove(&key(&j));
                }
                true
            }
            None => false,
        }
    }

    /// The jobs of `lane` in launch order.
    pub fn in_order(&self, lane: i64) -> impl Iterator<Item = QueuedJob> + '_ {
        self.lanes
            .get(&lane)
            .into_iter()
            .flatten()
            .map(move |k| self.lane_of[&k.2])
    }

    /// The first job of `lane`, in queue order, that `fits` accepts (e.g. whose resources are
    /// free). Jobs before it that do not fit are skipped, not blocked on.
    pub fn next(&self, lane: i64, mut fits: impl FnMut(&QueuedJob) -> bool) -> Option<QueuedJob> {
        self.in_order(lane).find(|j| fits(j))
    }

    /// The lanes that have queued jobs.
    pub fn lanes(&self) -> impl Iterator<Item = i64> + '_ {
        self.lanes
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(l, _)| *l)
    }

    /// Position (0-based) of a job in its lane's order.
    pub fn position(&self, job: i64) -> Option<usize> {
        let j = self.lane_of.get(&job)?;
        Some(self.lanes.get(&j.lane)?.range(..key(j)).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_priority_first_then_first_in_first_out() {
        let mut q = QueueIndex::new();
        for (job, priority, seq) in [(1, 5, 1), (2, 9, 2), (3, 5, 3), (4, 9, 4), (5, 0, 5)] {
            q.push(QueuedJob {
                priority,
                seq,
                job,
                lane: 1,
            });
        }
        let order: Vec<i64> = q.in_order(1).map(|j| j.job).collect();
        assert_eq!(order, [2, 4, 1, 3, 5]);
        assert_eq!(
            q.next(1, |j| j.job != 2).map(|j| j.job),
            Some(4),
            "a job that does not fit is skipped"
        );
        assert_eq!(q.position(3), Some(3));
        assert!(q.remove(2));
        assert_eq!(q.next(1, |_| true).map(|j| j.job), Some(4));
        // A re-queued job takes a new sequence number: it goes behind its level.
        q.push(QueuedJob {
            priority: 9,
            seq: 6,
            job: 2,
            lane: 1,
        });
        assert_eq!(
            q.in_order(1).map(|j| j.job).collect::<Vec<_>>(),
            [4, 2, 1, 3, 5]
        );
        assert_eq!(q.len(), 5);
    }

    #[test]
    fn the_job_value_counts_only_with_priority_management() {
        let f = PriorityFacts {
            requested: Some(90),
            may_set_priority: false,
            user_default: None,
            instance_default: 10,
        };
        assert_eq!(effective_priority(f), 10);
        assert_eq!(
            effective_priority(PriorityFacts {
                user_default: Some(40),
                ..f
            }),
            40
        );
        assert_eq!(
            effective_priority(PriorityFacts {
                may_set_priority: true,
                ..f
            }),
            90
        );
        assert_eq!(
            effective_priority(PriorityFacts {
                requested: None,
                may_set_priority: true,
                ..f
            }),
            10
        );
        assert_eq!(
            effective_priority(PriorityFacts {
                requested: Some(500),
                may_set_priority: true,
                ..f
            }),
            100
        );
        assert_eq!(effective_priority(PriorityFacts::default()), 0);
    }

    #[test]
    fn transitions() {
        use JobStatus::*;
        assert!(Building.can_become(Queued));
        assert!(!Building.can_become(Running));
        assert!(Running.can_become(Killed));
        assert!(!Completed.can_become(Killed));
        assert!(Failed.can_become(Building), "clear");
        assert!(Killed.can_become(Queued), "re-queue");
    }
}
