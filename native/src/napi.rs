//! The N-API boundary: the only module that touches `napi_*` symbols. They are declared
//! here by hand (the napi crate is not available offline) and resolve against the node
//! binary when the addon is loaded. Compiled only outside `cargo test`, which has no node.
//!
//! Rules kept throughout: no global JS state (everything is created per env in
//! `napi_register_module_v1`, so the addon works in worker threads); every error thrown on
//! purpose carries a `code` from src/errors.ts; no panic crosses into C.

#![allow(non_camel_case_types)]

use crate::chunker::{Batch, Chunker};
use crate::hash::{check_lengths, hash_many};
use crate::multi::{Fingerprint, MultiChunker};
use crate::params::{Params, DEFAULT_NORMALIZATION};
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

// ---- The C interface (node_api.h, js_native_api.h; N-API version 8 and earlier) ----

#[repr(C)]
pub struct napi_env__ {
    _p: [u8; 0],
}
#[repr(C)]
pub struct napi_value__ {
    _p: [u8; 0],
}
#[repr(C)]
pub struct napi_callback_info__ {
    _p: [u8; 0],
}
#[repr(C)]
pub struct napi_ref__ {
    _p: [u8; 0],
}
#[repr(C)]
pub struct napi_deferred__ {
    _p: [u8; 0],
}
#[repr(C)]
pub struct napi_async_work__ {
    _p: [u8; 0],
}

type napi_env = *mut napi_env__;
type napi_value = *mut napi_value__;
type napi_callback_info = *mut napi_callback_info__;
type napi_ref = *mut napi_ref__;
type napi_deferred = *mut napi_deferred__;
type napi_async_work = *mut napi_async_work__;
type napi_status = i32;
type napi_callback = unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value;
type napi_finalize = unsafe extern "C" fn(napi_env, *mut c_void, *mut c_void);
type napi_async_execute_callback = unsafe extern "C" fn(napi_env, *mut c_void);
type napi_async_complete_callback = unsafe extern "C" fn(napi_env, napi_status, *mut c_void);

const NAPI_OK: napi_status = 0;

// napi_valuetype
const NAPI_UNDEFINED: i32 = 0;
const NAPI_NULL: i32 = 1;
const NAPI_BOOLEAN: i32 = 2;
const NAPI_NUMBER: i32 = 3;
const NAPI_STRING: i32 = 4;
const NAPI_EXTERNAL: i32 = 8;

// napi_typedarray_type
const NAPI_UINT8_ARRAY: i32 = 1;
const NAPI_UINT8_CLAMPED_ARRAY: i32 = 2;
const NAPI_UINT32_ARRAY: i32 = 6;

#[repr(C)]
struct napi_type_tag {
    lower: u64,
    upper: u64,
}

extern "C" {
    fn napi_create_function(
        env: napi_env,
        name: *const c_char,
        len: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_set_named_property(env: napi_env, obj: napi_value, name: *const c_char, v: napi_value) -> napi_status;
    fn napi_get_cb_info(
        env: napi_env,
        info: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;
    fn napi_typeof(env: napi_env, v: napi_value, result: *mut i32) -> napi_status;
    fn napi_get_value_double(env: napi_env, v: napi_value, result: *mut f64) -> napi_status;
    fn napi_create_double(env: napi_env, value: f64, result: *mut napi_value) -> napi_status;
    fn napi_get_null(env: napi_env, result: *mut napi_value) -> napi_status;
    fn napi_get_value_bool(env: napi_env, v: napi_value, result: *mut bool) -> napi_status;
    fn napi_is_typedarray(env: napi_env, v: napi_value, result: *mut bool) -> napi_status;
    fn napi_get_typedarray_info(
        env: napi_env,
        v: napi_value,
        kind: *mut i32,
        length: *mut usize,
        data: *mut *mut c_void,
        arraybuffer: *mut napi_value,
        byte_offset: *mut usize,
    ) -> napi_status;
    fn napi_create_arraybuffer(env: napi_env, len: usize, data: *mut *mut c_void, result: *mut napi_value)
        -> napi_status;
    fn napi_create_typedarray(
        env: napi_env,
        kind: i32,
        length: usize,
        arraybuffer: napi_value,
        byte_offset: usize,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_create_buffer_copy(
        env: napi_env,
        len: usize,
        data: *const c_void,
        result_data: *mut *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_create_string_utf8(env: napi_env, s: *const c_char, len: usize, result: *mut napi_value) -> napi_status;
    fn napi_get_value_string_utf8(env: napi_env, v: napi_value, buf: *mut c_char, bufsize: usize, result: *mut usize)
        -> napi_status;
    fn napi_create_external(
        env: napi_env,
        data: *mut c_void,
        finalize: Option<napi_finalize>,
        hint: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_get_value_external(env: napi_env, v: napi_value, result: *mut *mut c_void) -> napi_status;
    fn napi_type_tag_object(env: napi_env, v: napi_value, tag: *const napi_type_tag) -> napi_status;
    fn napi_check_object_type_tag(env: napi_env, v: napi_value, tag: *const napi_type_tag, result: *mut bool)
        -> napi_status;
    fn napi_create_array_with_length(env: napi_env, len: usize, result: *mut napi_value) -> napi_status;
    fn napi_set_element(env: napi_env, obj: napi_value, i: u32, v: napi_value) -> napi_status;
    fn napi_throw_error(env: napi_env, code: *const c_char, msg: *const c_char) -> napi_status;
    fn napi_create_error(env: napi_env, code: napi_value, msg: napi_value, result: *mut napi_value) -> napi_status;
    fn napi_is_exception_pending(env: napi_env, result: *mut bool) -> napi_status;
    fn napi_get_and_clear_last_exception(env: napi_env, result: *mut napi_value) -> napi_status;
    fn napi_create_promise(env: napi_env, deferred: *mut napi_deferred, promise: *mut napi_value) -> napi_status;
    fn napi_resolve_deferred(env: napi_env, d: napi_deferred, v: napi_value) -> napi_status;
    fn napi_reject_deferred(env: napi_env, d: napi_deferred, v: napi_value) -> napi_status;
    fn napi_create_async_work(
        env: napi_env,
        resource: napi_value,
        resource_name: napi_value,
        execute: napi_async_execute_callback,
        complete: napi_async_complete_callback,
        data: *mut c_void,
        result: *mut napi_async_work,
    ) -> napi_status;
    fn napi_queue_async_work(env: napi_env, work: napi_async_work) -> napi_status;
    fn napi_delete_async_work(env: napi_env, work: napi_async_work) -> napi_status;
    fn napi_create_reference(env: napi_env, v: napi_value, initial: u32, result: *mut napi_ref) -> napi_status;
    fn napi_delete_reference(env: napi_env, r: napi_ref) -> napi_status;
}

// ---- Errors ----

/// What a JS-facing function fails with.
enum JsError {
    /// Thrown (or rejected) as an Error whose `code` is one of src/errors.ts ErrorCode.
    Coded(&'static str, String),
    /// An N-API call failed; it may have left a JS exception pending, which then wins.
    Napi(&'static str),
    /// A bug (a caught panic): a plain Error without a code.
    Internal(String),
}

type JsResult<T> = Result<T, JsError>;

fn bad_argument(msg: String) -> JsError {
    JsError::Coded("BAD_ARGUMENT", msg)
}

fn cstring(s: &str) -> CString {
    // Our messages never contain NUL; if one ever did, truncating beats losing the error.
    CString::new(s.split('\0').next().unwrap_or("")).unwrap_or_default()
}

macro_rules! napi {
    ($call:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: every call site passes an env from the current callback and out-pointers
        // to live locals.
        let status = unsafe { $call($($arg),*) };
        if status != NAPI_OK {
            return Err(JsError::Napi(stringify!($call)));
        }
    }};
}

unsafe fn throw(env: napi_env, err: JsError) {
    let mut pending = false;
    napi_is_exception_pending(env, &mut pending);
    match err {
        JsError::Coded(code, msg) => {
            if pending {
                // A coded error is the more useful one; drop whatever N-API left behind.
                let mut ignored = ptr::null_mut();
                napi_get_and_clear_last_exception(env, &mut ignored);
            }
            napi_throw_error(env, cstring(code).as_ptr(), cstring(&msg).as_ptr());
        }
        JsError::Napi(what) => {
            if !pending {
                let msg = format!("chunkyard-native: {what} failed");
                napi_throw_error(env, ptr::null(), cstring(&msg).as_ptr());
            }
        }
        JsError::Internal(msg) => {
            if !pending {
                napi_throw_error(env, ptr::null(), cstring(&msg).as_ptr());
            }
        }
    }
}

/// The error value a promise is rejected with.
fn error_value(env: napi_env, err: JsError) -> JsResult<napi_value> {
    let (code, msg) = match err {
        JsError::Coded(code, msg) => (Some(code), msg),
        JsError::Napi(what) => (None, format!("chunkyard-native: {what} failed")),
        JsError::Internal(msg) => (None, msg),
    };
    let code_v = match code {
        Some(c) => string(env, c)?,
        None => ptr::null_mut(),
    };
    let msg_v = string(env, &msg)?;
    let mut out = ptr::null_mut();
    napi!(napi_create_error(env, code_v, msg_v, &mut out));
    Ok(out)
}

fn internal(p: &(dyn std::any::Any + Send)) -> JsError {
    let what = if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    };
    JsError::Internal(format!("chunkyard-native: internal error: {what}"))
}

/// Runs a JS-facing function body: fetches up to N arguments (missing ones are
/// `undefined`), and turns errors and panics into JS exceptions.
unsafe fn entry<const N: usize>(
    env: napi_env,
    info: napi_callback_info,
    body: impl FnOnce(napi_env, &[napi_value; N]) -> JsResult<napi_value>,
) -> napi_value {
    let run = || -> JsResult<napi_value> {
        let mut argc = N;
        let mut argv = [ptr::null_mut(); N];
        napi!(napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()));
        body(env, &argv)
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            throw(env, e);
            ptr::null_mut()
        }
        Err(p) => {
            throw(env, internal(&*p));
            ptr::null_mut()
        }
    }
}

// ---- Values in and out ----

fn type_of(env: napi_env, v: napi_value) -> JsResult<i32> {
    let mut t = 0;
    napi!(napi_typeof(env, v, &mut t));
    Ok(t)
}

fn type_name(t: i32) -> &'static str {
    ["undefined", "null", "boolean", "number", "string", "symbol", "object", "function", "external", "bigint"]
        .get(t as usize)
        .copied()
        .unwrap_or("unknown")
}

fn string(env: napi_env, s: &str) -> JsResult<napi_value> {
    let mut out = ptr::null_mut();
    napi!(napi_create_string_utf8(env, s.as_ptr() as *const c_char, s.len(), &mut out));
    Ok(out)
}

/// A number argument as f64 for Params::from_f64, which owns the rules.
fn number(env: napi_env, v: napi_value, name: &str) -> JsResult<f64> {
    let t = type_of(env, v)?;
    if t != NAPI_NUMBER {
        return Err(bad_argument(format!("{name} must be a number (got {})", type_name(t))));
    }
    let mut out = 0.0;
    napi!(napi_get_value_double(env, v, &mut out));
    Ok(out)
}

fn boolean(env: napi_env, v: napi_value, name: &str) -> JsResult<bool> {
    match type_of(env, v)? {
        NAPI_UNDEFINED => Ok(false),
        NAPI_BOOLEAN => {
            let mut out = false;
            napi!(napi_get_value_bool(env, v, &mut out));
            Ok(out)
        }
        t => Err(bad_argument(format!("{name} must be a boolean (got {})", type_name(t)))),
    }
}

/// A typed array's bytes as seen from Rust. The pointer stays valid while the JS value is
/// alive and not detached; async work holds a napi_ref for that.
#[derive(Clone, Copy)]
struct RawBytes {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the owning JS value is kept alive by a napi_ref until the work that uses the bytes
// has completed. Async work writes only into output buffers whose callers promise not to
// touch them until the work settles (compressIntoAsync, decodeIntoAsync).
unsafe impl Send for RawBytes {}

impl RawBytes {
    /// SAFETY: the JS value the bytes came from must still be alive and not detached.
    unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            // Empty typed arrays may report a null data pointer.
            &[]
        } else {
            std::slice::from_raw_parts(self.ptr, self.len)
        }
    }
}

fn typed_array(env: napi_env, v: napi_value, name: &str, want: &[i32], want_name: &str) -> JsResult<(RawBytes, usize)> {
    let mut is = false;
    napi!(napi_is_typedarray(env, v, &mut is));
    if is {
        let mut kind = -1;
        let mut length = 0usize;
        let mut data: *mut c_void = ptr::null_mut();
        napi!(napi_get_typedarray_info(
            env,
            v,
            &mut kind,
            &mut length,
            &mut data,
            ptr::null_mut(),
            ptr::null_mut()
        ));
        if want.contains(&kind) {
            let elem = if kind == NAPI_UINT32_ARRAY { 4 } else { 1 };
            // N-API's data pointer already includes the view's byte offset.
            return Ok((RawBytes { ptr: data as *const u8, len: length * elem }, length));
        }
    }
    let t = type_of(env, v)?;
    let got = if is { "another typed array".to_string() } else { type_name(t).to_string() };
    Err(bad_argument(format!("{name} must be a {want_name} (got {got})")))
}

/// SAFETY (for callers of as_mut_slice): the JS side hands these bytes to this call for
/// writing; nothing else reads or writes them until it returns.
impl RawBytes {
    unsafe fn as_mut_slice<'a>(self) -> &'a mut [u8] {
        if self.len == 0 {
            &mut []
        } else {
            std::slice::from_raw_parts_mut(self.ptr as *mut u8, self.len)
        }
    }
}

fn bytes_arg(env: napi_env, v: napi_value, name: &str) -> JsResult<RawBytes> {
    Ok(typed_array(env, v, name, &[NAPI_UINT8_ARRAY, NAPI_UINT8_CLAMPED_ARRAY], "Uint8Array or Buffer")?.0)
}

fn key_arg(env: napi_env, v: napi_value) -> JsResult<Option<[u8; 32]>> {
    match type_of(env, v)? {
        NAPI_UNDEFINED | NAPI_NULL => return Ok(None),
        _ => {}
    }
    let raw = typed_array(env, v, "key", &[NAPI_UINT8_ARRAY], "32-byte Uint8Array or null")?.0;
    // SAFETY: v is an argument of the running call, so its bytes are alive.
    let bytes = unsafe { raw.as_slice() };
    match <[u8; 32]>::try_from(bytes) {
        Ok(k) => Ok(Some(k)),
        Err(_) => Err(bad_argument(format!("key has {} bytes: must be 32 bytes (a BLAKE3 key) or null", bytes.len()))),
    }
}

/// The fingerprint kind of multiChunkerNew: 'blake3' (also when undefined) or 'xxh3'.
fn fingerprint_arg(env: napi_env, v: napi_value) -> JsResult<Fingerprint> {
    let t = type_of(env, v)?;
    if t == NAPI_UNDEFINED {
        return Ok(Fingerprint::Blake3);
    }
    let bad = |got: String| bad_argument(format!("fingerprint must be 'blake3' or 'xxh3' (got {got})"));
    if t != NAPI_STRING {
        return Err(bad(type_name(t).to_string()));
    }
    // Long enough for either name plus one byte, so that a longer string never matches.
    let mut buf = [0u8; 16];
    let mut len = 0usize;
    napi!(napi_get_value_string_utf8(env, v, buf.as_mut_ptr() as *mut c_char, buf.len(), &mut len));
    match &buf[..len] {
        b"blake3" => Ok(Fingerprint::Blake3),
        b"xxh3" => Ok(Fingerprint::Xxh3),
        other => Err(bad(format!("'{}'", String::from_utf8_lossy(other)))),
    }
}

fn lengths_arg(env: napi_env, v: napi_value) -> JsResult<Vec<u32>> {
    u32s_arg(env, v, "lengths")
}

fn u32s_arg(env: napi_env, v: napi_value, name: &str) -> JsResult<Vec<u32>> {
    let (raw, n) = typed_array(env, v, name, &[NAPI_UINT32_ARRAY], "Uint32Array")?;
    // SAFETY: as in key_arg. Copied because a Uint32Array's bytes need not be 4-aligned
    // in general and the copy lets async work drop the reference to it at once.
    let bytes = unsafe { raw.as_slice() };
    let mut out = Vec::with_capacity(n);
    for c in bytes.chunks_exact(4) {
        out.push(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    Ok(out)
}

fn new_typed_array(env: napi_env, kind: i32, elems: usize, bytes: &[u8]) -> JsResult<napi_value> {
    let mut data: *mut c_void = ptr::null_mut();
    let mut ab = ptr::null_mut();
    napi!(napi_create_arraybuffer(env, bytes.len(), &mut data, &mut ab));
    if !bytes.is_empty() {
        // SAFETY: the ArrayBuffer was just created with bytes.len() bytes at data.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data as *mut u8, bytes.len()) };
    }
    let mut out = ptr::null_mut();
    napi!(napi_create_typedarray(env, kind, elems, ab, 0, &mut out));
    Ok(out)
}

/// A two-element JS array [first, second]: the shape of every multi-value answer here.
fn pair(env: napi_env, first: napi_value, second: napi_value) -> JsResult<napi_value> {
    let mut arr = ptr::null_mut();
    napi!(napi_create_array_with_length(env, 2, &mut arr));
    napi!(napi_set_element(env, arr, 0, first));
    napi!(napi_set_element(env, arr, 1, second));
    Ok(arr)
}

/// `[n, reason]`: a number (a length or an index; -1 for "failed") and a reason ("" when none).
fn number_and_reason(env: napi_env, n: f64, reason: &str) -> JsResult<napi_value> {
    let mut v = ptr::null_mut();
    napi!(napi_create_double(env, n, &mut v));
    pair(env, v, string(env, reason)?)
}

fn buffer(env: napi_env, bytes: &[u8]) -> JsResult<napi_value> {
    let mut out = ptr::null_mut();
    let mut ignored: *mut c_void = ptr::null_mut();
    napi!(napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr() as *const c_void, &mut ignored, &mut out));
    Ok(out)
}

/// `[lengths: Uint32Array, hashes: Uint8Array]`, the shape of ChunkBatch on the TS side.
fn batch_value(env: napi_env, b: &Batch) -> JsResult<napi_value> {
    let mut len_bytes = Vec::with_capacity(4 * b.lengths.len());
    for l in &b.lengths {
        len_bytes.extend_from_slice(&l.to_ne_bytes());
    }
    let lengths = new_typed_array(env, NAPI_UINT32_ARRAY, b.lengths.len(), &len_bytes)?;
    let hashes = new_typed_array(env, NAPI_UINT8_ARRAY, b.hashes.len(), &b.hashes)?;
    pair(env, lengths, hashes)
}

// ---- The chunker handle ----

/// Marks externals made by this addon, so a foreign external is refused, not dereferenced.
/// Random constant; changing it only matters within one process.
const HANDLE_TAG: napi_type_tag = napi_type_tag { lower: 0x6368_756e_6b79_6172, upper: 0x9b1f_43c7_0e55_d2a1 };

/// The same for multiChunkerNew's handles, so that neither kind passes for the other.
const MULTI_HANDLE_TAG: napi_type_tag = napi_type_tag { lower: 0x6d75_6c74_6963_6875, upper: 0x41c2_9e07_b3d8_5f16 };

/// What a handle holds: a streaming chunker (one size, or several in one pass). The push
/// calls, sync and async, are written once for both (push_now, push_later).
trait Stream: Send + 'static {
    const TAG: &'static napi_type_tag;
    const MADE_BY: &'static str;
    /// The async work's name (for async hooks and diagnostics).
    const WORK_NAME: &'static str;
    /// What a push gives back.
    type Out: Send + 'static;
    fn reset(&mut self);
    fn push_slice(&mut self, data: &[u8], fin: bool) -> Self::Out;
    fn out_value(env: napi_env, out: Self::Out) -> JsResult<napi_value>;
}

impl Stream for Chunker {
    const TAG: &'static napi_type_tag = &HANDLE_TAG;
    const MADE_BY: &'static str = "handle must be a chunker made by chunkerNew";
    const WORK_NAME: &'static str = "chunkyard:chunkerPush";
    type Out = Batch;
    fn reset(&mut self) {
        Chunker::reset(self)
    }
    fn push_slice(&mut self, data: &[u8], fin: bool) -> Batch {
        self.push(data, fin)
    }
    fn out_value(env: napi_env, out: Batch) -> JsResult<napi_value> {
        batch_value(env, &out)
    }
}

impl Stream for MultiChunker {
    const TAG: &'static napi_type_tag = &MULTI_HANDLE_TAG;
    const MADE_BY: &'static str = "handle must be a multi-size chunker made by multiChunkerNew";
    const WORK_NAME: &'static str = "chunkyard:multiChunkerPush";
    type Out = Vec<Batch>;
    fn reset(&mut self) {
        MultiChunker::reset(self)
    }
    fn push_slice(&mut self, data: &[u8], fin: bool) -> Vec<Batch> {
        self.push(data, fin)
    }
    fn out_value(env: napi_env, out: Vec<Batch>) -> JsResult<napi_value> {
        batches_value(env, &out)
    }
}

/// (handle, data, final) -> the push's result, on the JS thread.
fn push_now<T: Stream>(env: napi_env, a: &[napi_value; 3]) -> JsResult<napi_value> {
    let h = handle_arg::<T>(env, a[0])?;
    let data = bytes_arg(env, a[1], "data")?;
    let fin = boolean(env, a[2], "final")?;
    if h.busy.load(Ordering::Acquire) {
        return Err(busy_error());
    }
    // SAFETY: a[1] is an argument of this call, alive until it returns.
    let out = lock(&h).push_slice(unsafe { data.as_slice() }, fin);
    T::out_value(env, out)
}

/// (handle, data, final) -> a promise of the push's result, computed on the libuv pool. The
/// handle is busy until then: a second push meanwhile is CHUNKER_BUSY.
fn push_later<T: Stream>(env: napi_env, a: &[napi_value; 3]) -> JsResult<napi_value> {
    let h = handle_arg::<T>(env, a[0])?;
    let data = bytes_arg(env, a[1], "data")?;
    let fin = boolean(env, a[2], "final")?;
    if h.busy.swap(true, Ordering::AcqRel) {
        return Err(busy_error());
    }
    let for_job = h.clone();
    let job = Box::new(move || {
        // SAFETY: a napi_ref on the data holds it until work_complete.
        let slice = unsafe { data.as_slice() };
        lock(&for_job).push_slice(slice, fin)
    });
    let after = Box::new(move || h.busy.store(false, Ordering::Release));
    start_work(env, T::WORK_NAME, &[a[0], a[1]], job, T::out_value, Some(after))
}

struct ChunkerHandle<T> {
    /// Set on the JS thread while an async push is queued or running.
    busy: AtomicBool,
    /// Only ever locked by one push at a time (busy guards that); the mutex makes the
    /// hand-over between the JS thread and the pool thread sound.
    chunker: Mutex<T>,
}

type Handle<T = Chunker> = Arc<ChunkerHandle<T>>;

unsafe extern "C" fn finalize_handle<T: Stream>(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: data is the Box<Handle<T>> leaked in new_handle; N-API finalizes once.
    drop(Box::from_raw(data as *mut Handle<T>));
}

/// Wraps a chunker in a tagged external.
fn new_handle<T: Stream>(env: napi_env, chunker: T) -> JsResult<napi_value> {
    let handle: Box<Handle<T>> = Box::new(Arc::new(ChunkerHandle { busy: AtomicBool::new(false), chunker: Mutex::new(chunker) }));
    let raw = Box::into_raw(handle) as *mut c_void;
    let mut out = ptr::null_mut();
    // SAFETY: on failure N-API did not take ownership, so reclaim the box.
    let status = unsafe { napi_create_external(env, raw, Some(finalize_handle::<T>), ptr::null_mut(), &mut out) };
    if status != NAPI_OK {
        drop(unsafe { Box::from_raw(raw as *mut Handle<T>) });
        return Err(JsError::Napi("napi_create_external"));
    }
    napi!(napi_type_tag_object(env, out, T::TAG));
    Ok(out)
}

fn handle_arg<T: Stream>(env: napi_env, v: napi_value) -> JsResult<Handle<T>> {
    let bad = || bad_argument(T::MADE_BY.to_string());
    if type_of(env, v)? != NAPI_EXTERNAL {
        return Err(bad());
    }
    let mut tagged = false;
    napi!(napi_check_object_type_tag(env, v, T::TAG, &mut tagged));
    if !tagged {
        return Err(bad());
    }
    let mut data: *mut c_void = ptr::null_mut();
    napi!(napi_get_value_external(env, v, &mut data));
    // SAFETY: the tag proves data is our Box<Handle<T>>, alive while v is.
    Ok(unsafe { (*(data as *const Handle<T>)).clone() })
}

fn busy_error() -> JsError {
    JsError::Coded(
        "CHUNKER_BUSY",
        "the chunker was pushed again before its previous push finished: await each push".to_string(),
    )
}

fn lock<T: Stream>(h: &ChunkerHandle<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic mid-push leaves a stream in an unknown state; start over rather than fail forever.
    h.chunker.lock().unwrap_or_else(|poisoned| {
        let mut g = poisoned.into_inner();
        g.reset();
        g
    })
}

// ---- Exports ----

unsafe extern "C" fn js_version(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<0>(env, info, |env, _| string(env, crate::VERSION))
}

/// chunkerNew(minSize, avgSize, maxSize, normalization, key | null, gear | null | undefined) -> external
/// gear: a keyed gear table, 2048 bytes (256 u64, little-endian), or null for the default.
unsafe extern "C" fn js_chunker_new(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<6>(env, info, |env, a| {
        let min = number(env, a[0], "minSize")?;
        let avg = number(env, a[1], "avgSize")?;
        let max = number(env, a[2], "maxSize")?;
        let nc = match type_of(env, a[3])? {
            NAPI_UNDEFINED | NAPI_NULL => DEFAULT_NORMALIZATION as f64,
            _ => number(env, a[3], "normalization")?,
        };
        let params = Params::from_f64(min, avg, max, nc).map_err(|e| bad_argument(e.0))?;
        let key = key_arg(env, a[4])?;
        let params = match type_of(env, a[5])? {
            NAPI_UNDEFINED | NAPI_NULL => params,
            _ => {
                // SAFETY: as in key_arg: the bytes are read (copied) before this call returns.
                let raw = typed_array(env, a[5], "gear", &[NAPI_UINT8_ARRAY], "2048-byte Uint8Array or null")?.0;
                let bytes = unsafe { raw.as_slice() };
                if bytes.len() != 2048 {
                    return Err(bad_argument(format!("gear has {} bytes: must be 2048 bytes (256 little-endian u64) or null", bytes.len())));
                }
                let mut table = [0u64; 256];
                for (i, w) in bytes.chunks_exact(8).enumerate() {
                    table[i] = u64::from_le_bytes(w.try_into().unwrap());
                }
                params.with_gear(crate::gear::intern(table))
            }
        };
        new_handle(env, Chunker::new(params, key))
    })
}

/// chunkerPush(handle, data, final) -> [lengths, hashes], on the calling thread.
unsafe extern "C" fn js_chunker_push(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, push_now::<Chunker>)
}

/// What an async call carries from the JS thread to the pool and back.
struct Work<T> {
    work: napi_async_work,
    deferred: napi_deferred,
    /// Keep the input bytes (and the chunker's external) alive while the pool reads them.
    refs: Vec<napi_ref>,
    job: Option<Box<dyn FnOnce() -> T + Send>>,
    result: Option<std::thread::Result<T>>,
    /// Turns the result into a JS value on the JS thread.
    finish: fn(napi_env, T) -> JsResult<napi_value>,
    /// Runs on the JS thread when the work is over, whatever its outcome.
    after: Option<Box<dyn FnOnce()>>,
}

unsafe extern "C" fn work_execute<T>(_env: napi_env, data: *mut c_void) {
    // SAFETY: data is the Box<Work<T>> queued by start_work; only this thread touches it
    // until complete runs.
    let w = &mut *(data as *mut Work<T>);
    if let Some(job) = w.job.take() {
        // No N-API calls here: this runs on a libuv pool thread.
        w.result = Some(catch_unwind(AssertUnwindSafe(job)));
    }
}

unsafe extern "C" fn work_complete<T>(env: napi_env, status: napi_status, data: *mut c_void) {
    // SAFETY: the Box<Work<T>> from start_work, handed back exactly once.
    let mut w = Box::from_raw(data as *mut Work<T>);
    if let Some(after) = w.after.take() {
        after();
    }
    let finish = w.finish;
    let outcome: JsResult<napi_value> = match w.result.take() {
        Some(Ok(v)) => catch_unwind(AssertUnwindSafe(|| finish(env, v))).unwrap_or_else(|p| Err(internal(&*p))),
        Some(Err(p)) => Err(internal(&*p)),
        None if status != NAPI_OK => Err(JsError::Napi("async work (cancelled)")),
        None => Err(JsError::Napi("async work (did not run)")),
    };
    match outcome {
        Ok(v) => {
            napi_resolve_deferred(env, w.deferred, v);
        }
        Err(e) => {
            let mut pending = false;
            napi_is_exception_pending(env, &mut pending);
            let mut reason = ptr::null_mut();
            if pending {
                napi_get_and_clear_last_exception(env, &mut reason);
            } else if let Ok(v) = error_value(env, e) {
                reason = v;
            }
            napi_reject_deferred(env, w.deferred, reason);
        }
    }
    for r in w.refs.drain(..) {
        napi_delete_reference(env, r);
    }
    napi_delete_async_work(env, w.work);
}

/// Queues `job` on the libuv pool; returns the promise of its result. `keep` are the JS
/// values the job reads through raw pointers. `after` runs on the JS thread at completion,
/// and also right away if queueing fails.
fn start_work<T: Send + 'static>(
    env: napi_env,
    name: &str,
    keep: &[napi_value],
    job: Box<dyn FnOnce() -> T + Send>,
    finish: fn(napi_env, T) -> JsResult<napi_value>,
    after: Option<Box<dyn FnOnce()>>,
) -> JsResult<napi_value> {
    let mut w = Box::new(Work {
        work: ptr::null_mut(),
        deferred: ptr::null_mut(),
        refs: Vec::new(),
        job: Some(job),
        result: None,
        finish,
        after,
    });
    let queued = (|| -> JsResult<napi_value> {
        for &v in keep {
            let mut r = ptr::null_mut();
            napi!(napi_create_reference(env, v, 1, &mut r));
            w.refs.push(r);
        }
        let name_v = string(env, name)?;
        let mut work = ptr::null_mut();
        let raw = &mut *w as *mut Work<T> as *mut c_void;
        napi!(napi_create_async_work(env, ptr::null_mut(), name_v, work_execute::<T>, work_complete::<T>, raw, &mut work));
        w.work = work;
        let mut promise = ptr::null_mut();
        napi!(napi_create_promise(env, &mut w.deferred, &mut promise));
        napi!(napi_queue_async_work(env, work));
        Ok(promise)
    })();
    match queued {
        Ok(promise) => {
            // Owned by the work from now on; work_complete frees it.
            Box::leak(w);
            Ok(promise)
        }
        Err(e) => {
            // SAFETY: nothing was queued, so nothing else refers to these.
            unsafe {
                for r in w.refs.drain(..) {
                    napi_delete_reference(env, r);
                }
                if !w.work.is_null() {
                    napi_delete_async_work(env, w.work);
                }
                if !w.deferred.is_null() {
                    let reason = error_value(env, JsError::Napi("napi_queue_async_work")).unwrap_or(ptr::null_mut());
                    napi_reject_deferred(env, w.deferred, reason);
                }
            }
            if let Some(after) = w.after.take() {
                after();
            }
            Err(e)
        }
    }
}

/// chunkerPushAsync(handle, data, final) -> Promise<[lengths, hashes]>, on the libuv pool.
unsafe extern "C" fn js_chunker_push_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, push_later::<Chunker>)
}

/// multiChunkerNew(params: Uint32Array [minSize, avgSize, maxSize, normalization]×n, key | null,
///   fingerprint?: 'blake3' | 'xxh3')
///   -> external: n chunkers v1 over one stream, sharing one gear-hash pass (multi.rs).
///   'xxh3': each chunk's 32 bytes are its XXH3-128, big-endian, then 16 zeros; no key.
unsafe extern "C" fn js_multi_chunker_new(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, |env, a| {
        let quads = u32s_arg(env, a[0], "params")?;
        if quads.is_empty() || quads.len() % 4 != 0 {
            return Err(bad_argument(format!(
                "params has {} numbers: must be [minSize, avgSize, maxSize, normalization] for each of one or more sizes",
                quads.len()
            )));
        }
        let mut params = Vec::with_capacity(quads.len() / 4);
        for (i, q) in quads.chunks_exact(4).enumerate() {
            let p = Params::from_f64(q[0] as f64, q[1] as f64, q[2] as f64, q[3] as f64)
                .map_err(|e| bad_argument(format!("params of size {i}: {}", e.0)))?;
            params.push(p);
        }
        let key = key_arg(env, a[1])?;
        let kind = fingerprint_arg(env, a[2])?;
        let m = MultiChunker::with_fingerprint(&params, key, kind).map_err(bad_argument)?;
        new_handle(env, m)
    })
}

/// One `[lengths, hashes]` per size, in the order of multiChunkerNew's params.
fn batches_value(env: napi_env, bs: &[Batch]) -> JsResult<napi_value> {
    let mut arr = ptr::null_mut();
    napi!(napi_create_array_with_length(env, bs.len(), &mut arr));
    for (i, b) in bs.iter().enumerate() {
        napi!(napi_set_element(env, arr, i as u32, batch_value(env, b)?));
    }
    Ok(arr)
}

/// multiChunkerPush(handle, data, final) -> [[lengths, hashes] per size], on the calling thread.
unsafe extern "C" fn js_multi_chunker_push(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, push_now::<MultiChunker>)
}

/// multiChunkerPushAsync(handle, data, final) -> Promise<[[lengths, hashes] per size]>,
/// on the libuv pool (and the rayon-core pool for its two halves).
unsafe extern "C" fn js_multi_chunker_push_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, push_later::<MultiChunker>)
}

/// A whole number argument in [lo, hi].
fn whole(env: napi_env, v: napi_value, name: &str, lo: u32, hi: u32) -> JsResult<u32> {
    let n = number(env, v, name)?;
    if n.fract() != 0.0 || n < lo as f64 || n > hi as f64 {
        return Err(bad_argument(format!("{name} must be a whole number in [{lo}, {hi}] (got {n})")));
    }
    Ok(n as u32)
}

/// argon2idAsync(password, salt, memoryKiB, passes, lanes) -> Promise<Buffer(32)>, on the libuv
/// pool (argon2.rs). The inputs are copied: they are a few bytes.
unsafe extern "C" fn js_argon2id_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        // SAFETY: a[0] and a[1] are arguments of this call; their bytes are copied at once.
        let password = unsafe { bytes_arg(env, a[0], "password")?.as_slice() }.to_vec();
        let salt = unsafe { bytes_arg(env, a[1], "salt")?.as_slice() }.to_vec();
        let m = whole(env, a[2], "memoryKiB", 8, 1 << 22)?;
        let t = whole(env, a[3], "passes", 1, 1 << 16)?;
        let p = whole(env, a[4], "lanes", 1, 1 << 8)?;
        let job = Box::new(move || {
            let mut out = vec![0u8; 32];
            crate::argon2::argon2id(&password, &salt, m, t, p, &mut out).map(|()| out).map_err(|e| e.0)
        });
        start_work(env, "chunkyard:argon2id", &[], job, |env, r: Result<Vec<u8>, &'static str>| match r {
            Ok(out) => buffer(env, &out),
            Err(why) => Err(bad_argument(format!("argon2id: {why}"))),
        }, None)
    })
}

/// blake3(data, key | null) -> Buffer(32)
unsafe extern "C" fn js_blake3(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<2>(env, info, |env, a| {
        let data = bytes_arg(env, a[0], "data")?;
        let key = key_arg(env, a[1])?;
        // SAFETY: a[0] is an argument of this call.
        let h = crate::chunker::fingerprint(key.as_ref(), data.as_slice());
        buffer(env, h.as_bytes())
    })
}

// ---- Incremental BLAKE3 for metadata (recipes, manifests, tables) ----
//
// The JS side hashes metadata in pieces (a recipe as it is written). Without this, it took
// hash-wasm's WASM module, compiled at every process start (~6 ms) and instantiated per
// hasher (~3 ms each). Used from the JS thread only, so a RefCell is enough.

const HASHER_TAG: napi_type_tag = napi_type_tag { lower: 0x6d65_7461_6861_7368, upper: 0x2f8a_c613_5e9d_07b4 };

unsafe extern "C" fn finalize_hasher(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: data is the Box leaked in js_hasher_new; N-API finalizes once.
    drop(Box::from_raw(data as *mut std::cell::RefCell<blake3::Hasher>));
}

fn null(env: napi_env) -> JsResult<napi_value> {
    let mut out = ptr::null_mut();
    napi!(napi_get_null(env, &mut out));
    Ok(out)
}

fn hasher_arg<'a>(env: napi_env, v: napi_value) -> JsResult<&'a std::cell::RefCell<blake3::Hasher>> {
    let bad = || bad_argument("hasher must be a value made by hasherNew".to_string());
    if type_of(env, v)? != NAPI_EXTERNAL {
        return Err(bad());
    }
    let mut tagged = false;
    napi!(napi_check_object_type_tag(env, v, &HASHER_TAG, &mut tagged));
    if !tagged {
        return Err(bad());
    }
    let mut data: *mut c_void = ptr::null_mut();
    napi!(napi_get_value_external(env, v, &mut data));
    // SAFETY: the tag proves data is our boxed RefCell, alive while v (an argument) is.
    Ok(unsafe { &*(data as *const std::cell::RefCell<blake3::Hasher>) })
}

/// hasherNew() -> an incremental BLAKE3 hasher (unkeyed)
unsafe extern "C" fn js_hasher_new(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<0>(env, info, |env, _a| {
        let raw = Box::into_raw(Box::new(std::cell::RefCell::new(blake3::Hasher::new()))) as *mut c_void;
        let mut out = ptr::null_mut();
        // SAFETY: on failure N-API did not take ownership, so reclaim the box.
        let status = unsafe { napi_create_external(env, raw, Some(finalize_hasher), ptr::null_mut(), &mut out) };
        if status != NAPI_OK {
            drop(unsafe { Box::from_raw(raw as *mut std::cell::RefCell<blake3::Hasher>) });
            return Err(JsError::Napi("napi_create_external"));
        }
        napi!(napi_type_tag_object(env, out, &HASHER_TAG));
        Ok(out)
    })
}

/// hasherReset(hasher) -> null: starts a new message
unsafe extern "C" fn js_hasher_reset(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<1>(env, info, |env, a| {
        hasher_arg(env, a[0])?.borrow_mut().reset();
        null(env)
    })
}

/// hasherUpdate(hasher, data) -> null
unsafe extern "C" fn js_hasher_update(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<2>(env, info, |env, a| {
        let h = hasher_arg(env, a[0])?;
        let data = bytes_arg(env, a[1], "data")?;
        // SAFETY: a[1] is an argument of this call, so its bytes are alive.
        h.borrow_mut().update(unsafe { data.as_slice() });
        null(env)
    })
}

/// hasherDigest(hasher) -> Buffer(32): the hash of everything since new/reset (the state stays)
unsafe extern "C" fn js_hasher_digest(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<1>(env, info, |env, a| {
        let out = hasher_arg(env, a[0])?.borrow().finalize();
        buffer(env, out.as_bytes())
    })
}

fn many_args(env: napi_env, a: &[napi_value; 3]) -> JsResult<(RawBytes, Vec<u32>, Option<[u8; 32]>)> {
    let data = bytes_arg(env, a[0], "data")?;
    let lengths = lengths_arg(env, a[1])?;
    let key = key_arg(env, a[2])?;
    check_lengths(data.len, &lengths).map_err(bad_argument)?;
    Ok((data, lengths, key))
}

/// blake3Many(data, lengths: Uint32Array, key | null) -> Buffer(32 * n)
unsafe extern "C" fn js_blake3_many(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, |env, a| {
        let (data, lengths, key) = many_args(env, a)?;
        // SAFETY: a[0] is an argument of this call.
        let out = hash_many(key.as_ref(), data.as_slice(), &lengths, true);
        buffer(env, &out)
    })
}

/// blake3ManyAsync(data, lengths, key | null) -> Promise<Buffer(32 * n)>
unsafe extern "C" fn js_blake3_many_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, |env, a| {
        let (data, lengths, key) = many_args(env, a)?;
        let job = Box::new(move || {
            // SAFETY: a napi_ref on the data holds it until work_complete.
            hash_many(key.as_ref(), unsafe { data.as_slice() }, &lengths, true)
        });
        start_work(env, "chunkyard:blake3Many", &[a[0]], job, |env, out: Vec<u8>| buffer(env, &out), None)
    })
}

/// The arguments both decode-and-verify calls share: the stored bytes, their pieces
/// ([offset, storedLength, rawLength, codec] per chunk, as a Uint32Array), one 32-byte
/// fingerprint per piece and an optional key.
fn decode_args(env: napi_env, a: &[napi_value]) -> JsResult<(RawBytes, Vec<crate::codec::Piece>, RawBytes, Option<[u8; 32]>)> {
    let data = bytes_arg(env, a[0], "data")?;
    let quads = lengths_arg(env, a[1])?;
    let fps = bytes_arg(env, a[2], "fingerprints")?;
    let key = key_arg(env, a[3])?;
    if quads.len() % 4 != 0 {
        return Err(bad_argument(format!("pieces has {} numbers, not a multiple of 4", quads.len())));
    }
    let n = quads.len() / 4;
    if fps.len != n * 32 {
        return Err(bad_argument(format!("fingerprints has {} bytes, expected {}", fps.len, n * 32)));
    }
    let pieces = quads
        .chunks_exact(4)
        .map(|q| crate::codec::Piece { offset: q[0] as usize, stored_length: q[1] as usize, raw_length: q[2] as usize, codec: q[3] as u8 })
        .collect();
    Ok((data, pieces, fps, key))
}

/// `[failedIndex, reason]`: -1 and "" when every chunk verified.
fn verdict_value(env: napi_env, result: Result<(), (usize, String)>) -> JsResult<napi_value> {
    let (index, reason) = match result {
        Ok(()) => (-1.0, String::new()),
        Err((i, reason)) => (i as f64, reason),
    };
    number_and_reason(env, index, &reason)
}

/// The arguments of compressInto and compressIntoAsync, checked.
struct CompressArgs {
    codec: u8,
    data: RawBytes,
    pieces: Vec<(usize, usize)>,
    out: RawBytes,
    level: i32,
}

fn compress_args(env: napi_env, a: &[napi_value; 5]) -> JsResult<CompressArgs> {
    let codec = number(env, a[0], "codec")?;
    if codec != crate::codec::CODEC_LZ4 as f64 && codec != crate::codec::CODEC_ZSTD as f64 {
        return Err(bad_argument(format!("codec = {codec}: must be 1 (lz4) or 2 (zstd)")));
    }
    let data = bytes_arg(env, a[1], "data")?;
    let pairs = lengths_arg(env, a[2])?;
    if pairs.len() % 2 != 0 {
        return Err(bad_argument(format!("pieces has {} numbers, not a multiple of 2", pairs.len())));
    }
    let out = bytes_arg(env, a[3], "out")?;
    let level = number(env, a[4], "level")?;
    if !(level.fract() == 0.0 && (1.0..=19.0).contains(&level)) {
        return Err(bad_argument(format!("level = {level}: must be a whole number from 1 to 19")));
    }
    let pieces: Vec<(usize, usize)> = pairs.chunks_exact(2).map(|p| (p[0] as usize, p[1] as usize)).collect();
    // Checked here as well as in compress_into, so that the async form refuses a bad piece
    // when called instead of in a rejected promise later.
    if let Some((i, &(off, len))) = pieces.iter().enumerate().find(|(_, &(off, len))| off + len > data.len) {
        return Err(bad_argument(format!("piece {i} ({off}+{len}) runs past data ({})", data.len)));
    }
    Ok(CompressArgs { codec: codec as u8, data, pieces, out, level: level as i32 })
}

impl CompressArgs {
    /// SAFETY: data and out must stay alive and untouched by others until this returns.
    unsafe fn run(&self) -> Result<(Vec<u32>, Vec<u8>), String> {
        crate::codec::compress_into(self.codec, self.data.as_slice(), &self.pieces, self.out.as_mut_slice(), self.level)
    }
}

/// `[storedLengths: Uint32Array, codecs: Uint8Array]`
fn compressed_value(env: napi_env, (lens, codecs): (Vec<u32>, Vec<u8>)) -> JsResult<napi_value> {
    let mut len_bytes = Vec::with_capacity(4 * lens.len());
    for l in &lens {
        len_bytes.extend_from_slice(&l.to_ne_bytes());
    }
    let lens_v = new_typed_array(env, NAPI_UINT32_ARRAY, lens.len(), &len_bytes)?;
    let codecs_v = new_typed_array(env, NAPI_UINT8_ARRAY, codecs.len(), &codecs)?;
    pair(env, lens_v, codecs_v)
}

/// compressInto(codec: 1 | 2, data, pieces: Uint32Array [offset, length]×n, out, level)
///   -> [storedLengths: Uint32Array, codecs: Uint8Array]
/// Compresses each piece of data alone into out, back to back; a piece that does not shrink
/// is not written and gets codec 0 (its stored form is its raw bytes). Nothing is allocated
/// for the data: the buffers are the caller's (pooled, possibly shared memory).
/// Synchronous: the compression workers call it on their own threads.
unsafe extern "C" fn js_compress_into(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        let args = compress_args(env, a)?;
        // SAFETY: a[1] and a[3] are arguments of this call; out is ours to write until it returns.
        compressed_value(env, args.run().map_err(bad_argument)?)
    })
}

/// compressIntoAsync(...same as compressInto) -> Promise<[storedLengths, codecs]>, on the
/// libuv pool. Why beside the workers: a process that compresses a few MiB would otherwise
/// wait ~40 ms for a worker thread to boot, and piscina's import costs ~20 ms more; the libuv
/// pool is already running. The caller must leave data and out alone until it settles.
unsafe extern "C" fn js_compress_into_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        let args = compress_args(env, a)?;
        // SAFETY: napi_refs on data and out hold them until work_complete; the caller does not
        // touch them meanwhile (the contract above).
        let job = Box::new(move || unsafe { args.run() });
        start_work(env, "chunkyard:compressInto", &[a[1], a[3]], job, |env, r: Result<(Vec<u32>, Vec<u8>), String>| compressed_value(env, r.map_err(bad_argument)?), None)
    })
}

/// decodeInto(data, pieces: Uint32Array [offset, storedLength, rawLength, codec]×n,
///            fingerprints: Uint8Array(32n), key | null, out) -> [failedIndex, reason]
/// Decodes every chunk of one read into the caller's buffer (exactly the sum of the raw
/// lengths) and checks each against its fingerprint; -1 when every chunk verified.
unsafe extern "C" fn js_decode_into(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        let (data, pieces, fps, key) = decode_args(env, a)?;
        let out = bytes_arg(env, a[4], "out")?;
        // SAFETY: a[0], a[2] and a[4] are arguments of this call; out is ours until it returns.
        verdict_value(env, crate::codec::decode_into(data.as_slice(), &pieces, fps.as_slice(), key.as_ref(), out.as_mut_slice()))
    })
}

/// decodeScatterAsync(data, pieces: Uint32Array [offset, storedLength, rawLength, codec, dest]×n,
///                    fingerprints: Uint8Array(32n), key | null, out) -> Promise<[failedIndex, reason]>
/// decodeIntoAsync with a place in `out` for each chunk (out[dest .. dest + rawLength]): a
/// restore's read fills places scattered through its assembly area in one call. The caller
/// leaves data, fingerprints and those places alone until it settles; other places of `out`
/// may be written meanwhile by other calls.
unsafe extern "C" fn js_decode_scatter_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        let data = bytes_arg(env, a[0], "data")?;
        let fps = bytes_arg(env, a[2], "fingerprints")?;
        let (pieces, dests) = quint_pieces(env, a[1], fps.len)?;
        let key = key_arg(env, a[3])?;
        let out = bytes_arg(env, a[4], "out")?;
        let job = Box::new(move || {
            // SAFETY: napi_refs on data, fingerprints and out hold them until work_complete;
            // the caller leaves the pieces' places alone until then (the contract above).
            let out = out; // the whole RawBytes (Send), not its raw pointer field alone
            unsafe { crate::codec::decode_scatter(data.as_slice(), &pieces, &dests, fps.as_slice(), key.as_ref(), out.ptr as *mut u8, out.len) }
        });
        start_work(env, "chunkyard:decodeScatter", &[a[0], a[2], a[4]], job, verdict_value, None)
    })
}

/// `v` when it is a whole number in [min, max], else BAD_ARGUMENT naming `name`.
fn whole_in(v: f64, name: &str, min: f64, max: f64) -> JsResult<f64> {
    if v.fract() == 0.0 && v >= min && v <= max {
        Ok(v)
    } else {
        Err(bad_argument(format!("{name} = {v}: must be a whole number from {min} to {max}")))
    }
}

/// The file output of the scatter-out calls: fd, base, lo, hi, zeros (numbers) and the
/// direct flags (a Uint8Array, one per piece), checked.
fn file_out_args(env: napi_env, a: &[napi_value], n: usize) -> JsResult<(crate::codec::FileOut, Vec<u8>)> {
    let fd = whole_in(number(env, a[0], "fd")?, "fd", 0.0, i32::MAX as f64)? as i32;
    let base = whole_in(number(env, a[1], "base")?, "base", -9007199254740991.0, 9007199254740991.0)? as i64;
    let lo = whole_in(number(env, a[2], "lo")?, "lo", 0.0, 9007199254740991.0)? as usize;
    let hi = whole_in(number(env, a[3], "hi")?, "hi", 0.0, 9007199254740991.0)? as usize;
    let zeros = whole_in(number(env, a[4], "zeros")?, "zeros", 0.0, 2.0)? as u8;
    let direct_raw = bytes_arg(env, a[5], "direct")?;
    if direct_raw.len != n {
        return Err(bad_argument(format!("direct has {} bytes, expected {n}", direct_raw.len)));
    }
    // SAFETY: a[5] is an argument of the running call; copied so the work needs no reference.
    let direct = unsafe { direct_raw.as_slice() }.to_vec();
    Ok((crate::codec::FileOut { fd, base, lo, hi, zeros }, direct))
}

/// verdict_value, with a failed write of the output as index -2.
fn scatter_out_verdict(env: napi_env, result: Result<(), (usize, String)>) -> JsResult<napi_value> {
    match result {
        Err((crate::codec::OUTPUT_FAILED, reason)) => number_and_reason(env, -2.0, &reason),
        other => verdict_value(env, other),
    }
}

/// The [offset, storedLength, rawLength, codec, dest]×n pieces of the scatter calls, checked.
fn quint_pieces(env: napi_env, v: napi_value, fps_len: usize) -> JsResult<(Vec<crate::codec::Piece>, Vec<usize>)> {
    let quints = u32s_arg(env, v, "pieces")?;
    if quints.len() % 5 != 0 {
        return Err(bad_argument(format!("pieces has {} numbers, not a multiple of 5", quints.len())));
    }
    let n = quints.len() / 5;
    if fps_len != n * 32 {
        return Err(bad_argument(format!("fingerprints has {fps_len} bytes, expected {}", n * 32)));
    }
    let pieces = quints
        .chunks_exact(5)
        .map(|q| crate::codec::Piece { offset: q[0] as usize, stored_length: q[1] as usize, raw_length: q[2] as usize, codec: q[3] as u8 })
        .collect();
    Ok((pieces, quints.chunks_exact(5).map(|q| q[4] as usize).collect()))
}

/// decodeScatterOutAsync(data, pieces, fingerprints, key | null, out, fd, base, lo, hi, zeros,
///                       direct: Uint8Array(n)) -> Promise<[failedIndex, reason]>
/// decodeScatterAsync where the pieces whose `direct` flag is set are not put in `out` but
/// written to the file `fd` at base + dest (clipped to [lo, hi) of the places), each only
/// after it decoded and matched its fingerprint (codec::decode_scatter_out). -2: a write
/// failed (reason says why). The caller keeps fd open until the promise settles.
unsafe extern "C" fn js_decode_scatter_out_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<11>(env, info, |env, a| {
        let data = bytes_arg(env, a[0], "data")?;
        let fps = bytes_arg(env, a[2], "fingerprints")?;
        let (pieces, dests) = quint_pieces(env, a[1], fps.len)?;
        let key = key_arg(env, a[3])?;
        let out = bytes_arg(env, a[4], "out")?;
        let (file, direct) = file_out_args(env, &a[5..11], pieces.len())?;
        let job = Box::new(move || {
            // SAFETY: napi_refs on data, fingerprints and out hold them until work_complete;
            // the caller leaves the pieces' places alone and fd open until then.
            let out = out;
            unsafe { crate::codec::decode_scatter_out(data.as_slice(), &pieces, &dests, fps.as_slice(), key.as_ref(), out.ptr as *mut u8, out.len, &file, &direct) }
        });
        start_work(env, "chunkyard:decodeScatterOut", &[a[0], a[2], a[4]], job, scatter_out_verdict, None)
    })
}

/// openScatterOutAsync(data, pieces, fingerprints, fingerprintKey | null, chunkKey, out, fd,
///                     base, lo, hi, zeros, direct) -> Promise<[failedIndex, reason]>
/// openScatterAsync with decodeScatterOutAsync's direct pieces.
unsafe extern "C" fn js_open_scatter_out_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<12>(env, info, |env, a| {
        let data = bytes_arg(env, a[0], "data")?;
        let fps = bytes_arg(env, a[2], "fingerprints")?;
        let (pieces, dests) = quint_pieces(env, a[1], fps.len)?;
        let key = key_arg(env, a[3])?;
        let chunk_key = chunk_key_arg(env, a[4])?;
        let out = bytes_arg(env, a[5], "out")?;
        let (file, direct) = file_out_args(env, &a[6..12], pieces.len())?;
        let job = Box::new(move || {
            // SAFETY: as js_open_scatter_async; fd stays open until the promise settles.
            let (data, out) = (data, out);
            unsafe { crate::seal::open_scatter_out(data.as_mut_slice(), &pieces, &dests, fps.as_slice(), key.as_ref(), &chunk_key, out.ptr as *mut u8, out.len, Some((&file, &direct))) }
        });
        start_work(env, "chunkyard:openScatterOut", &[a[0], a[2], a[5]], job, scatter_out_verdict, None)
    })
}

/// readScatterAsync(fd, position, data, pieces, fingerprints, key | null, chunkKey | null, out,
///                  outFd, base, lo, hi, zeros, direct | null) -> Promise<[failedIndex, reason]>
/// One planned read of a restore in one piece of work (fused.rs): the pack's bytes
/// [position, position + data.length) pread into data (fewer where the file ends first), then
/// decodeScatterAsync of them (with chunkKey: openScatterAsync's sealed chunks, data
/// overwritten). outFd -1: no file output; else decodeScatterOutAsync's direct pieces
/// (base, lo, hi, zeros, direct as there). -2: a write failed; -3: the pread failed. The
/// caller keeps fd (and outFd) open, and leaves data and the pieces' places alone, until it settles.
unsafe extern "C" fn js_read_scatter_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<14>(env, info, |env, a| {
        let fd = whole_in(number(env, a[0], "fd")?, "fd", 0.0, i32::MAX as f64)? as i32;
        let position = whole_in(number(env, a[1], "position")?, "position", 0.0, 9007199254740991.0)? as u64;
        let data = bytes_arg(env, a[2], "data")?;
        let fps = bytes_arg(env, a[4], "fingerprints")?;
        let (pieces, dests) = quint_pieces(env, a[3], fps.len)?;
        let key = key_arg(env, a[5])?;
        let chunk_key = key_arg(env, a[6])?;
        let out = bytes_arg(env, a[7], "out")?;
        let out_fd = whole_in(number(env, a[8], "outFd")?, "outFd", -1.0, i32::MAX as f64)?;
        let output = if out_fd < 0.0 { None } else { Some(file_out_args(env, &[a[8], a[9], a[10], a[11], a[12], a[13]], pieces.len())?) };
        let job = Box::new(move || {
            // SAFETY: napi_refs on data, fingerprints and out hold them until work_complete;
            // the caller leaves data and the pieces' places alone, and fd and outFd open, until then.
            let (data, out) = (data, out);
            let keys = match chunk_key.as_ref() {
                Some(ck) => crate::fused::Keys::Sealed(key.as_ref(), ck),
                None => crate::fused::Keys::Plain(key.as_ref()),
            };
            let output = output.as_ref().map(|(f, d)| (f, &d[..]));
            unsafe { crate::fused::read_scatter(fd, position, data.as_mut_slice(), &pieces, &dests, fps.as_slice(), keys, out.ptr as *mut u8, out.len, output) }
        });
        start_work(env, "chunkyard:readScatter", &[a[2], a[4], a[7]], job, read_scatter_verdict, None)
    })
}

/// scatter_out_verdict, with a failed pread as index -3.
fn read_scatter_verdict(env: napi_env, result: Result<(), (usize, String)>) -> JsResult<napi_value> {
    match result {
        Err((crate::fused::READ_FAILED, reason)) => number_and_reason(env, -3.0, &reason),
        other => scatter_out_verdict(env, other),
    }
}

/// decodeIntoAsync(...same as decodeInto) -> Promise<[failedIndex, reason]>, on the libuv
/// pool (see compressIntoAsync for why). data, fingerprints and out are the caller's to leave
/// alone until it settles.
unsafe extern "C" fn js_decode_into_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        let (data, pieces, fps, key) = decode_args(env, a)?;
        let out = bytes_arg(env, a[4], "out")?;
        let job = Box::new(move || {
            // SAFETY: napi_refs on data, fingerprints and out hold them until work_complete.
            unsafe { crate::codec::decode_into(data.as_slice(), &pieces, fps.as_slice(), key.as_ref(), out.as_mut_slice()) }
        });
        start_work(env, "chunkyard:decodeInto", &[a[0], a[2], a[4]], job, verdict_value, None)
    })
}

/// The 32-byte chunk key of the seal calls.
fn chunk_key_arg(env: napi_env, v: napi_value) -> JsResult<[u8; 32]> {
    key_arg(env, v)?.ok_or_else(|| bad_argument("chunkKey must be a 32-byte Uint8Array".into()))
}

/// The arguments of sealInto and sealIntoAsync, checked.
struct SealArgs {
    codec: u8,
    data: RawBytes,
    pieces: Vec<(usize, usize)>,
    fingerprints: RawBytes,
    chunk_key: [u8; 32],
    salt: [u8; 16],
    out: RawBytes,
    level: i32,
}

fn seal_args(env: napi_env, a: &[napi_value; 8]) -> JsResult<SealArgs> {
    let codec = number(env, a[0], "codec")?;
    if codec != 0.0 && codec != crate::codec::CODEC_LZ4 as f64 && codec != crate::codec::CODEC_ZSTD as f64 {
        return Err(bad_argument(format!("codec = {codec}: must be 0 (none), 1 (lz4) or 2 (zstd)")));
    }
    let data = bytes_arg(env, a[1], "data")?;
    let pairs = lengths_arg(env, a[2])?;
    if pairs.len() % 2 != 0 {
        return Err(bad_argument(format!("pieces has {} numbers, not a multiple of 2", pairs.len())));
    }
    let pieces: Vec<(usize, usize)> = pairs.chunks_exact(2).map(|p| (p[0] as usize, p[1] as usize)).collect();
    if let Some((i, &(off, len))) = pieces.iter().enumerate().find(|(_, &(off, len))| off + len > data.len) {
        return Err(bad_argument(format!("piece {i} ({off}+{len}) runs past data ({})", data.len)));
    }
    let fingerprints = bytes_arg(env, a[3], "fingerprints")?;
    if fingerprints.len != pieces.len() * 32 {
        return Err(bad_argument(format!("fingerprints has {} bytes, expected {}", fingerprints.len, pieces.len() * 32)));
    }
    let chunk_key = chunk_key_arg(env, a[4])?;
    let salt_raw = bytes_arg(env, a[5], "salt")?;
    if salt_raw.len != 16 {
        return Err(bad_argument(format!("salt has {} bytes, expected 16", salt_raw.len)));
    }
    let mut salt = [0u8; 16];
    // SAFETY: a[5] is an argument of this call.
    salt.copy_from_slice(unsafe { salt_raw.as_slice() });
    let out = bytes_arg(env, a[6], "out")?;
    let need: usize = pieces.iter().map(|&(_, l)| l + crate::seal::OVERHEAD).sum();
    if out.len < need {
        return Err(bad_argument(format!("out has {} bytes, needs {need}", out.len)));
    }
    let level = number(env, a[7], "level")?;
    if !(level.fract() == 0.0 && (1.0..=19.0).contains(&level)) {
        return Err(bad_argument(format!("level = {level}: must be a whole number from 1 to 19")));
    }
    Ok(SealArgs { codec: codec as u8, data, pieces, fingerprints, chunk_key, salt, out, level: level as i32 })
}

impl SealArgs {
    /// SAFETY: data, fingerprints and out must stay alive, and out untouched by others, until this returns.
    unsafe fn run(&self) -> Result<(Vec<u32>, Vec<u8>), String> {
        crate::seal::seal_into(self.codec, self.data.as_slice(), &self.pieces, self.fingerprints.as_slice(), &self.chunk_key, &self.salt, self.out.as_mut_slice(), self.level)
    }
}

/// sealInto(codec: 0 | 1 | 2, data, pieces: Uint32Array [offset, length]×n,
///          fingerprints: Uint8Array(32n), chunkKey: Uint8Array(32), salt: Uint8Array(16), out, level)
///   -> [sealedLengths: Uint32Array, codecs: Uint8Array]
/// Compresses (unless codec 0) and seals each piece into out, back to back (seal.rs).
unsafe extern "C" fn js_seal_into(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<8>(env, info, |env, a| {
        let args = seal_args(env, a)?;
        // SAFETY: the buffers are arguments of this call.
        compressed_value(env, args.run().map_err(bad_argument)?)
    })
}

/// sealIntoAsync(...same as sealInto) -> Promise<[sealedLengths, codecs]>, on the libuv pool.
/// The caller leaves data, fingerprints and out alone until it settles.
unsafe extern "C" fn js_seal_into_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<8>(env, info, |env, a| {
        let args = seal_args(env, a)?;
        // SAFETY: napi_refs on data, fingerprints and out hold them until work_complete.
        let job = Box::new(move || unsafe { args.run() });
        start_work(env, "chunkyard:sealInto", &[a[1], a[3], a[6]], job, |env, r: Result<(Vec<u32>, Vec<u8>), String>| compressed_value(env, r.map_err(bad_argument)?), None)
    })
}

/// openMany(data, pieces: Uint32Array [offset, sealedLength, rawLength, codec, …]×n,
///          stride: 4 | 5, fingerprints: Uint8Array(32n), chunkKey) -> [failedIndex, reason]
/// Opens sealed chunks in place: each stored form is then at offset + 20, length − 36.
unsafe extern "C" fn js_open_many(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        let data = bytes_arg(env, a[0], "data")?;
        let nums = u32s_arg(env, a[1], "pieces")?;
        let stride = number(env, a[2], "stride")?;
        if stride != 4.0 && stride != 5.0 {
            return Err(bad_argument(format!("stride = {stride}: must be 4 or 5")));
        }
        let stride = stride as usize;
        if nums.len() % stride != 0 {
            return Err(bad_argument(format!("pieces has {} numbers, not a multiple of {stride}", nums.len())));
        }
        let fps = bytes_arg(env, a[3], "fingerprints")?;
        let n = nums.len() / stride;
        if fps.len != n * 32 {
            return Err(bad_argument(format!("fingerprints has {} bytes, expected {}", fps.len, n * 32)));
        }
        let chunk_key = chunk_key_arg(env, a[4])?;
        let pieces: Vec<crate::codec::Piece> = nums
            .chunks_exact(stride)
            .map(|q| crate::codec::Piece { offset: q[0] as usize, stored_length: q[1] as usize, raw_length: q[2] as usize, codec: q[3] as u8 })
            .collect();
        // SAFETY: a[0] and a[3] are arguments of this call; data is ours to overwrite until it returns.
        verdict_value(env, crate::seal::open_many(data.as_mut_slice(), &pieces, fps.as_slice(), &chunk_key))
    })
}

/// openScatterAsync(data, pieces: Uint32Array [offset, sealedLength, rawLength, codec, dest]×n,
///                  fingerprints: Uint8Array(32n), fingerprintKey | null, chunkKey, out)
///   -> Promise<[failedIndex, reason]>
/// decodeScatterAsync for sealed chunks: each opened in place in data (overwritten), decoded
/// into its place in out and checked against its fingerprint, in one pass (seal.rs).
unsafe extern "C" fn js_open_scatter_async(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<6>(env, info, |env, a| {
        let data = bytes_arg(env, a[0], "data")?;
        let fps = bytes_arg(env, a[2], "fingerprints")?;
        let (pieces, dests) = quint_pieces(env, a[1], fps.len)?;
        let key = key_arg(env, a[3])?;
        let chunk_key = chunk_key_arg(env, a[4])?;
        let out = bytes_arg(env, a[5], "out")?;
        let job = Box::new(move || {
            // SAFETY: napi_refs on data, fingerprints and out hold them until work_complete;
            // the caller leaves data and the pieces' places alone until then.
            let (data, out) = (data, out);
            unsafe { crate::seal::open_scatter(data.as_mut_slice(), &pieces, &dests, fps.as_slice(), key.as_ref(), &chunk_key, out.ptr as *mut u8, out.len) }
        });
        start_work(env, "chunkyard:openScatter", &[a[0], a[2], a[5]], job, verdict_value, None)
    })
}

/// copyBytes(dst, dstOffset, src) -> null: memcpy of all of src into dst at dstOffset.
/// Why: V8 copies into SharedArrayBuffer memory (the pipelines' slots) with a relaxed-atomic
/// loop, which measured 11% of the daemon's CPU for socket data copied into slots; this is
/// a plain memcpy. Nothing else may use the bytes during the call (JS is single-threaded, and
/// a slot being filled belongs to its reader).
unsafe extern "C" fn js_copy_bytes(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, |env, a| {
        let dst = bytes_arg(env, a[0], "dst")?;
        let offset = number(env, a[1], "dstOffset")?;
        let src = bytes_arg(env, a[2], "src")?;
        if !(offset.fract() == 0.0 && offset >= 0.0 && offset as usize <= dst.len && src.len <= dst.len - offset as usize) {
            return Err(bad_argument(format!("copyBytes: {} bytes at {offset} do not fit in {}", src.len, dst.len)));
        }
        if src.len > 0 {
            // SAFETY: both ranges are inside their arrays (checked above); ptr::copy allows overlap.
            ptr::copy(src.ptr, (dst.ptr as *mut u8).add(offset as usize), src.len);
        }
        let mut undef = ptr::null_mut();
        napi!(napi_get_null(env, &mut undef));
        Ok(undef)
    })
}

/// preallocate(fd, offset, length) -> errno, 0 when done: fallocate(2) with mode 0, which
/// allocates the blocks of [offset, offset + length) and extends the file to its end. Blocks
/// past the old end read as zeros (unwritten extents): a restore to a new file gets its zero
/// runs this way instead of writing them through the page cache, and the file has no holes
/// (unlike --sparse). ENOSYS where there is no fallocate; the caller then writes the zeros.
unsafe extern "C" fn js_preallocate(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, |env, a| {
        let fd = whole_in(number(env, a[0], "fd")?, "fd", 0.0, i32::MAX as f64)? as i32;
        let offset = whole_in(number(env, a[1], "offset")?, "offset", 0.0, 9007199254740991.0)? as i64;
        let length = whole_in(number(env, a[2], "length")?, "length", 0.0, 9007199254740991.0)? as i64;
        let errno = if length == 0 { 0 } else { fallocate_zero_mode(fd, offset, length) };
        let mut v = ptr::null_mut();
        napi!(napi_create_double(env, errno as f64, &mut v));
        Ok(v)
    })
}

#[cfg(target_os = "linux")]
fn fallocate_zero_mode(fd: i32, offset: i64, length: i64) -> i32 {
    extern "C" {
        fn fallocate(fd: std::ffi::c_int, mode: std::ffi::c_int, offset: i64, len: i64) -> std::ffi::c_int;
    }
    // SAFETY: a plain system call on a descriptor; it touches no memory of ours.
    if unsafe { fallocate(fd, 0, offset, length) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(5)
    }
}

#[cfg(not(target_os = "linux"))]
fn fallocate_zero_mode(_fd: i32, _offset: i64, _length: i64) -> i32 {
    38 // ENOSYS
}

/// dataRegion(fd, offset) -> [dataStart, dataEnd]: the next region of the file at or after
/// `offset` that holds data (lseek SEEK_DATA, then SEEK_HOLE), so that a backup does not read
/// a sparse file's holes (they read as zeros). [-1, -1] when no data follows `offset` (the
/// rest is a hole, or `offset` is at or past the end). A file system without hole support
/// answers as if the whole file were data. Other failures: [-errno, -errno].
unsafe extern "C" fn js_data_region(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<2>(env, info, |env, a| {
        let fd = number(env, a[0], "fd")?;
        let offset = number(env, a[1], "offset")?;
        if fd.fract() != 0.0 || !(0.0..=i32::MAX as f64).contains(&fd) {
            return Err(bad_argument(format!("fd = {fd}: must be a whole number from 0 to {}", i32::MAX)));
        }
        if offset.fract() != 0.0 || !(0.0..=9007199254740991.0).contains(&offset) {
            return Err(bad_argument(format!("offset = {offset}: must be a whole number from 0 to 2^53 - 1")));
        }
        let (start, end) = crate::sparse::data_region(fd as i32, offset as i64);
        let mut s = ptr::null_mut();
        napi!(napi_create_double(env, start as f64, &mut s));
        let mut e = ptr::null_mut();
        napi!(napi_create_double(env, end as f64, &mut e));
        pair(env, s, e)
    })
}

/// verifyMany(data, pieces: Uint32Array [offset, storedLength, rawLength, codec]×n,
///            fingerprints: Uint8Array(32n), key | null) -> [failedIndex, reason]
/// decodeInto without an output buffer (raw chunks hashed in place); -1 when all verify.
/// hkdfSha256(ikm, salt, info) -> Buffer(32): HKDF-SHA256 with a 32-byte output (seal.rs, hkdf32).
unsafe extern "C" fn js_hkdf_sha256(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<3>(env, info, |env, a| {
        let ikm = bytes_arg(env, a[0], "ikm")?;
        let salt = bytes_arg(env, a[1], "salt")?;
        let label = bytes_arg(env, a[2], "info")?;
        // SAFETY: arguments of this call, alive until it returns.
        let key = crate::seal::hkdf32(ikm.as_slice(), salt.as_slice(), label.as_slice());
        buffer(env, &key)
    })
}

/// objectSeal(objectKey, salt, info, ad, plain) -> Buffer: ciphertext ‖ tag (seal.rs, seal_object).
unsafe extern "C" fn js_object_seal(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        let [key, salt, label, ad, plain] = [bytes_arg(env, a[0], "objectKey")?, bytes_arg(env, a[1], "salt")?, bytes_arg(env, a[2], "info")?, bytes_arg(env, a[3], "ad")?, bytes_arg(env, a[4], "plain")?];
        // SAFETY: arguments of this call, alive until it returns.
        let sealed = crate::seal::seal_object(key.as_slice(), salt.as_slice(), label.as_slice(), ad.as_slice(), plain.as_slice());
        buffer(env, &sealed)
    })
}

/// objectOpen(objectKey, salt, info, ad, sealed: ciphertext ‖ tag) -> Buffer | null (null: it
/// does not authenticate).
unsafe extern "C" fn js_object_open(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<5>(env, info, |env, a| {
        let [key, salt, label, ad, sealed] = [bytes_arg(env, a[0], "objectKey")?, bytes_arg(env, a[1], "salt")?, bytes_arg(env, a[2], "info")?, bytes_arg(env, a[3], "ad")?, bytes_arg(env, a[4], "sealed")?];
        // SAFETY: arguments of this call, alive until it returns.
        match crate::seal::open_object(key.as_slice(), salt.as_slice(), label.as_slice(), ad.as_slice(), sealed.as_slice()) {
            Some(plain) => buffer(env, &plain),
            None => null(env),
        }
    })
}

unsafe extern "C" fn js_verify_many(env: napi_env, info: napi_callback_info) -> napi_value {
    entry::<4>(env, info, |env, a| {
        let (data, pieces, fps, key) = decode_args(env, a)?;
        // SAFETY: a[0] and a[2] are arguments of this call.
        verdict_value(env, crate::codec::verify_many(data.as_slice(), &pieces, fps.as_slice(), key.as_ref()))
    })
}

/// Fixes glibc's mmap threshold at its default (128 KiB) for the whole process.
///
/// Why: glibc raises the threshold to the size of any mmapped block that is freed (up to
/// 32 MiB), so after the first few MiB-sized buffers die, later ones come from the heap
/// arenas, whose freed memory is rarely given back: a restore's RSS then climbs to twice
/// what is live (measured: 222 MiB peak against 176 MiB with the threshold fixed, and a
/// little less CPU). Setting the threshold explicitly turns the adjustment off, so large
/// buffers are mapped and unmapped and RSS follows what is in use. Not glibc: nothing to do.
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            extern "C" {
                fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
            }
            const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
            // SAFETY: mallopt only changes allocator tuning; it is thread-safe in glibc.
            unsafe { mallopt(M_MMAP_THRESHOLD, 128 * 1024) };
        });
    }
}

/// Sketches and the delta codec (codec 3): napi/delta.rs.
mod delta;

/// Called by Node once per env (main thread and every worker) that loads the addon.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    fix_mmap_threshold();
    let fns: [(&str, napi_callback); 40] = [
        ("version\0", js_version),
        ("chunkerNew\0", js_chunker_new),
        ("chunkerPush\0", js_chunker_push),
        ("chunkerPushAsync\0", js_chunker_push_async),
        ("multiChunkerNew\0", js_multi_chunker_new),
        ("multiChunkerPush\0", js_multi_chunker_push),
        ("multiChunkerPushAsync\0", js_multi_chunker_push_async),
        ("blake3\0", js_blake3),
        ("blake3Many\0", js_blake3_many),
        ("blake3ManyAsync\0", js_blake3_many_async),
        ("hasherNew\0", js_hasher_new),
        ("hasherReset\0", js_hasher_reset),
        ("hasherUpdate\0", js_hasher_update),
        ("hasherDigest\0", js_hasher_digest),
        ("dataRegion\0", js_data_region),
        ("compressInto\0", js_compress_into),
        ("compressIntoAsync\0", js_compress_into_async),
        ("decodeInto\0", js_decode_into),
        ("decodeIntoAsync\0", js_decode_into_async),
        ("decodeScatterAsync\0", js_decode_scatter_async),
        ("decodeScatterOutAsync\0", js_decode_scatter_out_async),
        ("readScatterAsync\0", js_read_scatter_async),
        ("copyBytes\0", js_copy_bytes),
        ("sealInto\0", js_seal_into),
        ("sealIntoAsync\0", js_seal_into_async),
        ("openMany\0", js_open_many),
        ("openScatterAsync\0", js_open_scatter_async),
        ("openScatterOutAsync\0", js_open_scatter_out_async),
        ("verifyMany\0", js_verify_many),
        ("preallocate\0", js_preallocate),
        ("argon2idAsync\0", js_argon2id_async),
        ("hkdfSha256\0", js_hkdf_sha256),
        ("objectSeal\0", js_object_seal),
        ("objectOpen\0", js_object_open),
        ("deltaSketchAsync\0", delta::js_delta_sketch_async),
        ("deltaEncodeManyAsync\0", delta::js_delta_encode_many_async),
        ("deltaDecodeInto\0", delta::js_delta_decode_into),
        ("deltaDecodeAsync\0", delta::js_delta_decode_async),
        ("deltaDecodeManyAsync\0", delta::js_delta_decode_many_async),
        ("deltaDecodeStoredAsync\0", delta::js_delta_decode_stored_async),
    ];
    for (name, cb) in fns {
        let mut f = ptr::null_mut();
        let cname = name.as_ptr() as *const c_char;
        if napi_create_function(env, cname, name.len() - 1, cb, ptr::null_mut(), &mut f) != NAPI_OK
            || napi_set_named_property(env, exports, cname, f) != NAPI_OK
        {
            throw(env, JsError::Napi("registering the chunkyard exports"));
            return ptr::null_mut();
        }
    }
    exports
}

