"""Mutation check of the loom models: removes or reorders one guard of the
bridge at a time and reruns the model meant to catch it. Every line should say
"caught". Run from anywhere: python3 loom-tests/mutants.py [name prefix ...]
The source is restored after each mutant, even on failure."""
import subprocess, sys, os
workspace = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
root = os.path.join(workspace, 'crates', 'bridge', 'src') + os.sep
muts = {
 'M6b wake before publishing VALUE_SENT (race8)': ('channel.rs',
   "        let prev = State(inner.state.fetch_or(VALUE_SENT, Ordering::AcqRel));\n        if prev.is_rx_closed() {",
   "        let early = State(inner.state.load(Ordering::Acquire));\n        if early.is_waker_set() { unsafe { inner.wake_receiver() }; }\n        let prev = State(inner.state.fetch_or(VALUE_SENT, Ordering::AcqRel));\n        let prev = State(prev.0 & !WAKER_SET);\n        if prev.is_rx_closed() {"),
 'M1 publish_waker ignores a send that landed before WAKER_SET (race1)': ('channel.rs',
   "        drop(old);\n        if prev.is_tx_done() {", "        drop(old);\n        if false && prev.is_tx_done() {"),
 'M2 re-poll keeps the stale waker (race2)': ('channel.rs',
   "(*stored).as_ref().is_some_and(|w| w.will_wake(waker))", "(*stored).is_some()"),
 'M3 receiver drop after send leaves the value (race3)': ('channel.rs',
   "            drop(unsafe { inner.take_value() });\n        }\n        if prev.is_tx_done()", "            let _ = &inner;\n        }\n        if prev.is_tx_done()"),
 'M4 sender drop does not wake (race4)': ('channel.rs',
   "        if prev.is_waker_set() && !prev.is_rx_closed() {", "        if false && prev.is_waker_set() && !prev.is_rx_closed() {"),
 'M5 try_start ignores RX_CLOSED (race5)': ('channel.rs',
   "        !prev.is_rx_closed()\n", "        let _ = prev;\n        true\n"),
 'M6 wake before publishing VALUE_SENT (race6)': ('channel.rs',
   "        let prev = State(inner.state.fetch_or(VALUE_SENT, Ordering::AcqRel));\n        if prev.is_rx_closed() {",
   "        let early = State(inner.state.load(Ordering::Acquire));\n        if early.is_waker_set() { unsafe { inner.wake_receiver() }; }\n        let prev = State(inner.state.fetch_or(VALUE_SENT, Ordering::AcqRel));\n        let prev = State(prev.0 & !WAKER_SET);\n        if prev.is_rx_closed() {"),
 'M7a blocking wait trusts one unpark (race7)': ('wait.rs',
   "                Poll::Pending => thread::park(),", "                Poll::Pending => { thread::park(); return self.try_recv().map_err(|_| RecvError); }"),
 'M7b repeated poll re-clones the waker (race7)': ('channel.rs',
   "            if unchanged {", "            if unchanged && false {"),
 'M9 retire without its fence (race9)': ('runners.rs',
   "        self.alive.fetch_sub(1, Ordering::Relaxed);\n        fence(Ordering::SeqCst);", "        self.alive.fetch_sub(1, Ordering::Relaxed);"),
 'M10 after_push without its fence (race9)': ('runners.rs',
   "        fence(Ordering::SeqCst);\n        // ORDERING: Relaxed, see above. An idle", "        // ORDERING: Relaxed, see above. An idle"),
 'M11 retire does not look at the queue (race9)': ('runners.rs',
   "        if queue_is_empty() {\n            return true;\n        }", "        let _ = queue_is_empty;\n        if true {\n            return true;\n        }"),
 'M12 after_push does not wake a dozing runner (race10)': ('runners.rs',
   "            // An idle runner may be dozing: then it needs waking.\n            self.wake_dozer();", "            // An idle runner may be dozing: then it needs waking."),
 'M13 doze without its fence (race10)': ('runners.rs',
   "        // queue, against `after_push`'s fence between its push and its read\n        // of the mark (see the type's docs).\n        fence(Ordering::SeqCst);", "        // queue."),
 'M14 doze looks at the queue before taking the bell (race10)': ('runners.rs',
   "        let mut bell = self.bell.lock().unwrap_or_else(PoisonError::into_inner);",
   "        let early = queue_is_empty();\n        let mut bell = self.bell.lock().unwrap_or_else(PoisonError::into_inner);\n        let first = std::cell::Cell::new(true);\n        let queue_is_empty = || if first.replace(false) { early } else { queue_is_empty() };"),
 'M15 admit without its fence (race11)': ('../../pool/src/ledger.rs',
   "        fence(Ordering::SeqCst);\n        // ORDERING: Relaxed: the fence above carries the ordering.", "        // ORDERING: Relaxed: the fence above carries the ordering."),
 'M16 close without its fence (race11)': ('../../pool/src/ledger.rs',
   "            .compare_exchange(OPEN, CLOSED, Ordering::Relaxed, Ordering::Relaxed);\n        fence(Ordering::SeqCst);", "            .compare_exchange(OPEN, CLOSED, Ordering::Relaxed, Ordering::Relaxed);"),
 'M17 admit does not look at the lifecycle after counting (race11)': ('../../pool/src/ledger.rs',
   "        if self.lifecycle.load(Ordering::Relaxed) != OPEN {\n            // Closed between", "        if false && self.lifecycle.load(Ordering::Relaxed) != OPEN {\n            // Closed between"),
 'M8 receiver writes the waker cell while it is published (race2)': ('channel.rs',
   "            let prev = State(inner.state.fetch_and(!WAKER_SET, Ordering::AcqRel));\n            if prev.is_tx_done() {\n                // The sender",
   "            let _ = inner.waker.with_mut(|c| unsafe { (*c).take() });\n            let prev = State(inner.state.fetch_and(!WAKER_SET, Ordering::AcqRel));\n            if prev.is_tx_done() {\n                // The sender"),
}
sel = sys.argv[1:] 
for name,(f,a,b) in muts.items():
    if sel and not any(name.startswith(x) for x in sel): continue
    p=root+f; orig=open(p).read()
    assert a in orig, name
    open(p,'w').write(orig.replace(a,b,1))
    try:
        env=dict(os.environ, RUSTFLAGS='--cfg loom', CARGO_TARGET_DIR=os.path.join(workspace, 'target', 'loom'), LOOM_MAX_PREEMPTIONS='3')
        target=name.split('(')[1].split(')')[0].split(',')[0].strip()
        r=subprocess.run(['cargo','test','-p','loom-tests','--release','--test','races','--',target + '_'],cwd=workspace,env=env,capture_output=True,text=True,timeout=900)
        out=r.stdout+r.stderr
        failed=[l.split()[1] for l in out.splitlines() if l.startswith('test ') and l.endswith('FAILED')]
        err = 'error[' in out
        verdict = 'COMPILE ERROR' if err else ('caught by ' + ', '.join(failed) if failed else ('caught: test binary aborted (loom deadlock/panic), tests run before abort: ' + ','.join(l.split()[1] for l in out.splitlines() if l.startswith('test ') and l.endswith(' ok')) if r.returncode != 0 else 'NOT CAUGHT'))
        print(f"{name}: {verdict}", flush=True)
        if err: print(out[-2000:])
    finally:
        open(p,'w').write(orig)
