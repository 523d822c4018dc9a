//! For tests of the layers above the store: [`RecordingStore`] wraps any store and
//! notes which of its methods were called, in order, so that a test can show that two
//! requests did the same store work (for example, "Forgot your password?" for an
//! address with and without an account).

use std::sync::{Arc, Mutex, PoisonError};

use crate::Store;

/// A store that forwards every call to another and records the method's name. Its
/// `Store` impl is written, with the backends', from the trait's one method list
/// (`backend/forward.rs`).
#[derive(Debug)]
pub struct RecordingStore {
    inner: Arc<dyn Store>,
    calls: Mutex<Vec<&'static str>>,
}

impl RecordingStore {
    pub fn new(inner: Arc<dyn Store>) -> RecordingStore {
        RecordingStore { inner, calls: Mutex::default() }
    }

    /// The methods called since the last `take_calls` (or since the start), oldest
    /// first; the record starts over.
    pub fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn record(&self, method: &'static str) {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).push(method);
    }

    pub(crate) fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }
}
