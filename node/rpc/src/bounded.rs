//! Bounds on what one request's EVM run may cost the node: a deadline (geth's
//! `--rpc.evmtimeout` for eth_call and eth_estimateGas, the `timeout` option of debug_trace*)
//! and, for geth's struct logger, caps on the steps and bytes it records.
//!
//! Why an inspector: revm checks nothing but gas, and 50,000,000 gas of cheap opcodes under the
//! struct logger recorded a stack snapshot per step (a short loop took the node to 16.8 GiB).
//! [`Bounded`] wraps the real inspector, passes every hook through unchanged, and on each step
//! counts what the recording costs; past a bound it halts the run and remembers why, so the
//! request gets a clear error and the node keeps what it had.

use std::time::{Duration, Instant};

use revm::Inspector;
use revm::handler::FrameResult;
use revm::interpreter::interpreter_types::MemoryTr;
use revm::interpreter::{
    CallInputs, CallOutcome, CreateInputs, CreateOutcome, FrameInput, InstructionResult,
    Interpreter,
};
use revm::primitives::{Address, Log, U256};

/// geth's default for `--rpc.evmtimeout` and for a trace's `timeout` option.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most struct-logger steps one trace records (about 25 MB of JSON, the response limit).
pub const MAX_TRACE_STEPS: u64 = 250_000;
/// Most bytes one trace's struct logger may record (stacks and memory copies, estimated).
pub const MAX_TRACE_BYTES: u64 = 64 * 1024 * 1024;
/// Steps between two looks at the clock.
const CLOCK_EVERY: u64 = 1024;
/// What a recorded step costs besides its stack and memory copies.
const STEP_OVERHEAD: u64 = 96;

/// Why a run was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error("execution aborted (timeout = {0:?})")]
    Timeout(Duration),
    #[error(
        "trace aborted: more than {0} steps recorded (trace a smaller call, or use callTracer)"
    )]
    Steps(u64),
    #[error(
        "trace aborted: more than {0} bytes recorded (disable stack or memory capture, or use callTracer)"
    )]
    Bytes(u64),
}

/// What the struct logger copies per step, when it runs.
#[derive(Debug, Clone, Copy)]
pub struct Recording {
    pub stack: bool,
    pub memory: bool,
}

/// An inspector that stops the run at a deadline or, when `recording` is set, past the caps
/// on recorded steps and bytes.
#[derive(Debug)]
pub struct Bounded<I> {
    pub inner: I,
    timeout: Duration,
    deadline: Instant,
    recording: Option<Recording>,
    steps: u64,
    bytes: u64,
    exceeded: Option<Exceeded>,
}

impl<I> Bounded<I> {
    /// `inner` stopped at `timeout` from now.
    pub fn new(inner: I, timeout: Duration) -> Self {
        Self::until(inner, Instant::now() + timeout, timeout)
    }

    /// `inner` stopped at `deadline` (`timeout` is what the error message names).
    pub fn until(inner: I, deadline: Instant, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline,
            recording: None,
            steps: 0,
            bytes: 0,
            exceeded: None,
        }
    }

    /// Also caps what a struct logger that copies `recording` per step records.
    pub fn recording(mut self, recording: Recording) -> Self {
        self.recording = Some(recording);
        self
    }

    /// Why the run was stopped, if it was.
    pub fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded
    }

    fn check(&mut self, interp: &Interpreter) -> Option<Exceeded> {
        self.steps += 1;
        if let Some(recording) = self.recording {
            let mut cost = STEP_OVERHEAD;
            if recording.stack {
                cost += 32 * interp.stack.len() as u64;
            }
            if recording.memory {
                cost += interp.memory.size() as u64;
            }
            self.bytes = self.bytes.saturating_add(cost);
            if self.steps > MAX_TRACE_STEPS {
                return Some(Exceeded::Steps(MAX_TRACE_STEPS));
            }
            if self.bytes > MAX_TRACE_BYTES {
                return Some(Exceeded::Bytes(MAX_TRACE_BYTES));
            }
        }
        if self.steps.is_multiple_of(CLOCK_EVERY) && Instant::now() > self.deadline {
            return Some(Exceeded::Timeout(self.timeout));
        }
        None
    }
}

impl<CTX, I: Inspector<CTX>> Inspector<CTX> for Bounded<I> {
    fn initialize_interp(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        self.inner.initialize_interp(interp, context)
    }

    fn step(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        if self.exceeded.is_none() {
            self.exceeded = self.check(interp);
        }
        if self.exceeded.is_some() {
            // Halted before the step is recorded or executed, as if out of gas (a halt revm
            // handles everywhere); every frame above unwinds. The caller reports `exceeded`.
            interp.halt(InstructionResult::OutOfGas);
            return;
        }
        self.inner.step(interp, context)
    }

    fn step_end(&mut self, interp: &mut Interpreter, context: &mut CTX) {
        self.inner.step_end(interp, context)
    }

    fn log(&mut self, context: &mut CTX, log: Log) {
        self.inner.log(context, log)
    }

    fn log_full(&mut self, interp: &mut Interpreter, context: &mut CTX, log: Log) {
        self.inner.log_full(interp, context, log)
    }

    fn call(&mut self, context: &mut CTX, inputs: &mut CallInputs) -> Option<CallOutcome> {
        self.inner.call(context, inputs)
    }

    fn call_end(&mut self, context: &mut CTX, inputs: &CallInputs, outcome: &mut CallOutcome) {
        self.inner.call_end(context, inputs, outcome)
    }

    fn create(&mut self, context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        self.inner.create(context, inputs)
    }

    fn create_end(
        &mut self,
        context: &mut CTX,
        inputs: &CreateInputs,
        outcome: &mut CreateOutcome,
    ) {
        self.inner.create_end(context, inputs, outcome)
    }

    fn selfdestruct(&mut self, contract: Address, target: Address, value: U256) {
        self.inner.selfdestruct(contract, target, value)
    }

    fn frame_start(
        &mut self,
        context: &mut CTX,
        frame_input: &mut FrameInput,
    ) -> Option<FrameResult> {
        self.inner.frame_start(context, frame_input)
    }

    fn frame_end(
        &mut self,
        context: &mut CTX,
        frame_input: &FrameInput,
        frame_result: &mut FrameResult,
    ) {
        self.inner.frame_end(context, frame_input, frame_result)
    }
}

/// A trace's `timeout` option as geth reads it (a Go duration such as "5s" or "300ms"),
/// at most `ceiling`; absent, [`DEFAULT_TIMEOUT`] (capped too).
///
/// # Errors
/// A text that is not a duration.
pub fn trace_timeout(option: Option<&str>, ceiling: Duration) -> Result<Duration, String> {
    let Some(text) = option else {
        return Ok(DEFAULT_TIMEOUT.min(ceiling));
    };
    humantime::parse_duration(text)
        .map(|d| d.min(ceiling))
        .map_err(|e| format!("invalid timeout {text:?}: {e}"))
}
