//! [`ErasedJob`]: the one type-erased job the pool queues and runs. It
//! lives in the run queue's own slot when it is small, so queuing it
//! allocates nothing.
//!
//! A `Box<dyn Runnable>` costs every `execute` an allocation on the
//! submitting thread and a free on the computing one, and glibc's malloc
//! then moves its free lists between the two CPUs with every job. Most jobs
//! are a few words (the channel's sender, the submission time, a closure
//! holding an `Arc` or a slice), so an `ErasedJob` keeps a job of up to
//! [`JOB_WORDS`] words inline and boxes only bigger ones.
//!
//! It is what the `smallbox` crate does, with a thinner header: one pointer
//! to a static table of functions instead of a fat pointer, so a queue slot
//! is one word smaller. The queue's slots are allocated 63 at a time and
//! count in every job's bytes.
//!
//! A job that borrows from its caller's stack (`execute_sync`) is erased the
//! same way, by [`ErasedJob::new_borrowed`], whose caller promises to wait
//! until the job has run or been dropped.
//!
//! The job is run or discarded with a context `C` (the pool's engine) that
//! the erasure knows nothing about.

use std::marker::PhantomData;

use crate::priority::Priority;
use std::mem::{self, ManuallyDrop, MaybeUninit};

/// Words of a job kept inline; a bigger (or over-aligned) job is boxed.
/// Five: a pool job is its work, channel, submission time and origin (call
/// site and span in one word), so work of two words stays inline.
pub(crate) const JOB_WORDS: usize = 5;

type Space = [usize; JOB_WORDS];

/// A job the pool can hold, run, or discard unrun, given a context `C`.
pub(crate) trait Runnable<C: ?Sized>: Send {
    /// Runs the job, taken from `lane` (`None`: it waited in no lane);
    /// `before_send` is called once its work is over and before its result
    /// is sent.
    fn run(self, context: &C, lane: Option<Priority>, before_send: &mut dyn FnMut());

    /// Resolves the job without running it (the pool is past its shutdown
    /// deadline).
    fn discard(self, context: &C);
}

/// What an [`ErasedJob`] knows about the job it holds.
struct VTable<C: ?Sized> {
    /// Moves the job out of the space and runs it.
    run: unsafe fn(*mut Space, &C, Option<Priority>, &mut dyn FnMut()),
    /// Moves the job out of the space and discards it.
    discard: unsafe fn(*mut Space, &C),
    /// Drops the job in the space without running it.
    drop: unsafe fn(*mut Space),
    /// Whether the space holds the job itself rather than a box of it.
    #[cfg(test)]
    inline: bool,
}

/// A job of any [`Runnable`] type: inline when it fits, else boxed.
pub(crate) struct ErasedJob<C: ?Sized + 'static> {
    /// The job itself, or a `Box` of it (as `vtable` says).
    space: MaybeUninit<Space>,
    vtable: &'static VTable<C>,
    /// Opts out of the automatic `Send` and `Sync` (the fields above would
    /// give both, whatever the job): `Send` is granted below, on the job's
    /// own `Send`, and `Sync` is not needed.
    _erased: PhantomData<*mut ()>,
}

// SAFETY: an `ErasedJob` only ever holds a `J: Runnable`, which is `Send`
// (inline or in a `Box<J>`, which is `Send` then too); nothing else in it is
// shared.
unsafe impl<C: ?Sized> Send for ErasedJob<C> {}

/// How the space holds a job: the job itself ([`Inline`]) or a `Box` of it.
trait Held<C: ?Sized>: Sized {
    type Job: Runnable<C>;
    /// Whether this is the job itself.
    #[cfg(test)]
    const INLINE: bool;
    fn into_job(self) -> Self::Job;
}

/// A job held in the space itself.
#[repr(transparent)]
struct Inline<J>(J);

impl<C: ?Sized, J: Runnable<C>> Held<C> for Inline<J> {
    type Job = J;
    #[cfg(test)]
    const INLINE: bool = true;
    fn into_job(self) -> J {
        self.0
    }
}

impl<C: ?Sized, J: Runnable<C>> Held<C> for Box<J> {
    type Job = J;
    #[cfg(test)]
    const INLINE: bool = false;
    fn into_job(self) -> J {
        *self
    }
}

/// The table for a space that holds an `H`.
struct Table<C: ?Sized, H>(PhantomData<fn(&C) -> H>);

impl<C: ?Sized + 'static, H: Held<C>> Table<C, H> {
    const VTABLE: VTable<C> = VTable {
        run: Self::run,
        discard: Self::discard,
        drop: Self::drop,
        #[cfg(test)]
        inline: H::INLINE,
    };

    /// # Safety
    ///
    /// `space` holds an `H`, written by [`ErasedJob::holding`], not yet
    /// moved out or dropped; it is treated as moved out afterwards.
    unsafe fn run(
        space: *mut Space,
        context: &C,
        lane: Option<Priority>,
        before_send: &mut dyn FnMut(),
    ) {
        // SAFETY: the caller's contract: a live `H` that nobody reads again.
        let held = unsafe { space.cast::<H>().read() };
        held.into_job().run(context, lane, before_send);
    }

    /// # Safety
    ///
    /// As for `run`.
    unsafe fn discard(space: *mut Space, context: &C) {
        // SAFETY: the caller's contract: a live `H` that nobody reads again.
        let held = unsafe { space.cast::<H>().read() };
        held.into_job().discard(context);
    }

    /// # Safety
    ///
    /// As for `run`.
    unsafe fn drop(space: *mut Space) {
        // SAFETY: the caller's contract: a live `H` that nobody reads again.
        unsafe { space.cast::<H>().drop_in_place() }
    }
}

/// Whether an `H` fits in the space, in size and alignment.
const fn fits<H>() -> bool {
    mem::size_of::<H>() <= mem::size_of::<Space>()
        && mem::align_of::<H>() <= mem::align_of::<Space>()
}

impl<C: ?Sized + 'static> ErasedJob<C> {
    /// Holds `job`: inline when it fits in [`JOB_WORDS`] words, else boxed.
    pub(crate) fn new<J: Runnable<C> + 'static>(job: J) -> ErasedJob<C> {
        // SAFETY: `J: 'static`, so the job borrows nothing that could go away.
        unsafe { Self::new_borrowed(job) }
    }

    /// Holds a job that may borrow from its caller: like [`new`](Self::new).
    ///
    /// # Safety
    ///
    /// The caller keeps everything `job` borrows alive and untouched until
    /// the job has been run, discarded or dropped (`execute_sync` waits for
    /// the job's channel, which closes only after that).
    pub(crate) unsafe fn new_borrowed<J: Runnable<C>>(job: J) -> ErasedJob<C> {
        if fits::<Inline<J>>() {
            Self::holding(Inline(job))
        } else {
            Self::holding(Box::new(job))
        }
    }

    /// Writes `held` into the space, with its table.
    fn holding<H: Held<C>>(held: H) -> ErasedJob<C> {
        // A box is one word, word-aligned: only `Inline` can fail this.
        assert!(fits::<H>(), "checked by `new_borrowed`");
        let mut space = MaybeUninit::<Space>::uninit();
        // SAFETY: `H` fits in `Space` in size and alignment (asserted
        // above, at compile time in effect: it is a constant), and the
        // space is ours and uninitialised.
        unsafe { space.as_mut_ptr().cast::<H>().write(held) };
        ErasedJob {
            space,
            vtable: &Table::<C, H>::VTABLE,
            _erased: PhantomData,
        }
    }

    /// Whether the job is held inline rather than boxed.
    #[cfg(test)]
    pub(crate) fn is_inline(&self) -> bool {
        self.vtable.inline
    }

    /// Runs the job (see [`Runnable::run`]).
    pub(crate) fn run(self, context: &C, lane: Option<Priority>, before_send: &mut dyn FnMut()) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `holding` wrote the job `vtable` is for; `this` is never
        // dropped, so the job is moved out exactly once, here.
        unsafe { (this.vtable.run)(this.space.as_mut_ptr(), context, lane, before_send) }
    }

    /// Discards the job (see [`Runnable::discard`]).
    pub(crate) fn discard(self, context: &C) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: as in `run`.
        unsafe { (this.vtable.discard)(this.space.as_mut_ptr(), context) }
    }
}

impl<C: ?Sized + 'static> Drop for ErasedJob<C> {
    fn drop(&mut self) {
        // SAFETY: `holding` wrote the job `vtable` is for, and `run` and
        // `discard` (the only other ways out) do not let `Drop` run.
        unsafe { (self.vtable.drop)(self.space.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    // ORDERING: the counters are SeqCst and read on the thread that wrote
    // them; these tests are single-threaded.

    /// Counts its runs and drops; `N` words of ballast set its size.
    struct Counted<const N: usize> {
        runs: Arc<AtomicUsize>,
        drops: Arc<AtomicUsize>,
        ballast: [usize; N],
        panics: bool,
    }

    impl<const N: usize> Counted<N> {
        fn new(panics: bool) -> (Self, Arc<AtomicUsize>, Arc<AtomicUsize>) {
            let (runs, drops) = (Arc::default(), Arc::default());
            let job = Counted {
                runs: Arc::clone(&runs),
                drops: Arc::clone(&drops),
                ballast: [7; N],
                panics,
            };
            (job, runs, drops)
        }
    }

    impl<const N: usize> Drop for Counted<N> {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl<const N: usize> Runnable<()> for Counted<N> {
        fn discard(self, _: &()) {}

        fn run(self, _: &(), _: Option<Priority>, before_send: &mut dyn FnMut()) {
            assert!(self.ballast.iter().all(|&word| word == 7), "moved intact");
            self.runs.fetch_add(1, Ordering::SeqCst);
            before_send();
            assert!(!self.panics, "a job that panics");
        }
    }

    /// Runs a `Counted<N>` through an `ErasedJob`: whether it was inline,
    /// and its runs, drops and hook calls.
    fn run_counted<const N: usize>(panics: bool) -> (bool, usize, usize, usize) {
        let (job, runs, drops) = Counted::<N>::new(panics);
        let job = ErasedJob::<()>::new(job);
        let inline = job.is_inline();
        let mut hooks = 0;
        let outcome = catch_unwind(AssertUnwindSafe(|| job.run(&(), None, &mut || hooks += 1)));
        assert_eq!(outcome.is_err(), panics);
        (
            inline,
            runs.load(Ordering::SeqCst),
            drops.load(Ordering::SeqCst),
            hooks,
        )
    }

    #[test]
    fn a_small_job_is_held_inline_and_a_big_one_boxed_each_run_and_dropped_once() {
        // Two `Arc`s and a flag take three words: two words of ballast fit.
        assert_eq!(run_counted::<2>(false), (true, 1, 1, 1));
        assert_eq!(run_counted::<3>(false), (false, 1, 1, 1));
        assert_eq!(run_counted::<64>(false), (false, 1, 1, 1));
    }

    #[test]
    fn a_job_that_panics_is_dropped_once() {
        assert_eq!(run_counted::<2>(true), (true, 1, 1, 1));
        assert_eq!(run_counted::<64>(true), (false, 1, 1, 1));
    }

    #[test]
    fn a_job_never_run_is_dropped_once() {
        let (small, runs, drops) = Counted::<0>::new(false);
        drop(ErasedJob::<()>::new(small));
        assert_eq!(
            (runs.load(Ordering::SeqCst), drops.load(Ordering::SeqCst)),
            (0, 1)
        );
        let (big, runs, drops) = Counted::<64>::new(false);
        drop(ErasedJob::<()>::new(big));
        assert_eq!(
            (runs.load(Ordering::SeqCst), drops.load(Ordering::SeqCst)),
            (0, 1)
        );
    }

    #[test]
    fn an_over_aligned_job_is_boxed() {
        #[repr(align(64))]
        struct Aligned(Arc<AtomicUsize>);
        impl Runnable<()> for Aligned {
            fn discard(self, _: &()) {}

            fn run(self, _: &(), _: Option<Priority>, _before_send: &mut dyn FnMut()) {
                assert_eq!(std::ptr::from_ref(&self).align_offset(64), 0);
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let runs = Arc::new(AtomicUsize::new(0));
        let job = ErasedJob::<()>::new(Aligned(Arc::clone(&runs)));
        assert!(!job.is_inline());
        job.run(&(), None, &mut || {});
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_queue_slot_is_the_job_space_and_one_word() {
        assert_eq!(
            mem::size_of::<ErasedJob<()>>(),
            (JOB_WORDS + 1) * mem::size_of::<usize>()
        );
    }
}
