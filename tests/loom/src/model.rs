//! The interleavings (see the crate docs). Outcomes are numbers: a worker
//! delivers `work + 100`, a queued job's ender delivers `END`.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use crate::slot::{self, JobSlot, Mailbox, Phase, Slotted, DONE};

const WORK: u32 = 42;
const END: u32 = 999;

struct TestJob {
    slot: JobSlot<u32, u32>,
    /// How many times an outcome was delivered (must end at exactly 1).
    deliveries: AtomicUsize,
}

impl Slotted for TestJob {
    type Work = u32;
    type Outcome = u32;

    fn slot(&self) -> &JobSlot<u32, u32> {
        &self.slot
    }

    fn delivered(&self) {
        self.deliveries.fetch_add(1, Ordering::SeqCst);
    }
}

fn job() -> Arc<TestJob> {
    Arc::new(TestJob { slot: JobSlot::new(WORK), deliveries: AtomicUsize::new(0) })
}

/// What a worker does with a running job.
fn run(mut running: slot::Running<TestJob>) {
    let work = running.take_work().expect("a running job's work is there, once");
    assert!(running.take_work().is_none(), "the work is taken once");
    let ending = running.end();
    assert_eq!(ending.phase(), Phase::Running);
    ending.deliver(work + 100);
}

/// What the handle does: one read (if published), counted in `reads`.
fn read(job: &TestJob, reads: &AtomicUsize) -> Option<u32> {
    // SAFETY: each model has one handle thread; it alone calls this.
    let out = unsafe { job.slot.take_outcome() };
    if out.is_some() {
        reads.fetch_add(1, Ordering::SeqCst);
    }
    out
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// A push starts a job and hands it to a parked worker through the
/// mailbox while a canceller tries to end it queued and the handle reads.
/// Exactly one of them ends it; the handle reads its outcome once.
#[test]
fn hand_off_against_cancel_and_the_handle() {
    model(|| {
        let job = job();
        let mailbox = Arc::new(Mailbox::<TestJob>::default());
        let reads = Arc::new(AtomicUsize::new(0));

        let push = {
            let (job, mailbox) = (job.clone(), mailbox.clone());
            thread::spawn(move || {
                if let Some(running) = slot::try_start(&job) {
                    mailbox.put(running);
                }
            })
        };
        let cancel = {
            let job = job.clone();
            thread::spawn(move || {
                if let Some(ending) = slot::try_end_queued(&job) {
                    assert_eq!(ending.phase(), Phase::Queued);
                    ending.deliver(END);
                }
            })
        };
        let handle = {
            let (job, reads) = (job.clone(), reads.clone());
            thread::spawn(move || read(&job, &reads))
        };
        // The worker: takes what was handed to it (a woken worker takes its
        // mailbox first; one that finds it empty parks and is woken later).
        if let Some(running) = mailbox.take() {
            run(running);
        }
        push.join().unwrap();
        cancel.join().unwrap();
        let early = handle.join().unwrap();
        if let Some(running) = mailbox.take() {
            run(running); // woken after the push
        }

        assert_eq!(job.slot.state(), DONE);
        assert_eq!(job.deliveries.load(Ordering::SeqCst), 1, "ended exactly once");
        let late = read(&job, &reads);
        let outcome = early.or(late).expect("the outcome was read");
        assert!(outcome == WORK + 100 || outcome == END, "{outcome}");
        assert_eq!(reads.load(Ordering::SeqCst), 1, "read exactly once");
        assert!(read(&job, &reads).is_none());
    });
}

/// Two parties race to end a queued job (say a cancel and the queue-expiry
/// sweep) while a worker tries to start it: exactly one wins.
#[test]
fn one_winner_among_enders_and_a_starter() {
    model(|| {
        let job = job();
        let enders: Vec<_> = (0..2)
            .map(|_| {
                let job = job.clone();
                thread::spawn(move || match slot::try_end_queued(&job) {
                    Some(ending) => {
                        ending.deliver(END);
                        1
                    }
                    None => 0,
                })
            })
            .collect();
        let started = match slot::try_start(&job) {
            Some(running) => {
                run(running);
                1
            }
            None => 0,
        };
        let ended: usize = enders.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(started + ended, 1, "one move to DONE wins");
        assert_eq!(job.deliveries.load(Ordering::SeqCst), 1);
        let reads = AtomicUsize::new(0);
        let outcome = read(&job, &reads).expect("published");
        assert_eq!(outcome, if started == 1 { WORK + 100 } else { END });
    });
}

/// A mailbox dropped with a job in it releases the job (no leaked token),
/// and a take racing the put sees either nothing or the job, never a torn
/// pointer.
#[test]
fn the_mailbox_neither_tears_nor_leaks() {
    model(|| {
        let job = job();
        let mailbox = Arc::new(Mailbox::<TestJob>::default());
        let taker = {
            let mailbox = mailbox.clone();
            thread::spawn(move || mailbox.take().map(|r| Arc::strong_count(r.job())))
        };
        let running = slot::try_start(&job).expect("nobody else starts it");
        mailbox.put(running);
        let took = taker.join().unwrap();
        if let Some(count) = took {
            assert!(count >= 2, "the token holds the job");
            assert_eq!(job.slot.state(), slot::RUNNING);
        }
        drop(mailbox); // drops a job still inside
        assert_eq!(Arc::strong_count(&job), 1, "no token left behind");
    });
}
