//! The one place with `unsafe`: loading `libWeWorkFinanceSdk_C.so` at run time and calling it by the
//! rules of its header (`WeWorkFinanceSdk_C.h`, reference §6).
//!
//! Only the worker process uses this module; the pipeline's own process never loads the library.
//! Memory rules followed here:
//! - every `Slice_t` comes from `NewSlice` and goes back through `FreeSlice`, every `MediaData_t` from
//!   `NewMediaData` through `FreeMediaData` (RAII guards, so an early return cannot leak);
//! - binary results are read through `GetContentFromSlice`/`GetSliceLen` and `GetData`/`GetDataLen`,
//!   by length, never with `strlen`; the struct layouts are not relied on at all;
//! - the library is never unloaded (`dlclose` runs C++ static destructors that are a known crash
//!   source); the worker process exits instead.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr};
use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd as _;
use std::path::Path;
use std::ptr::NonNull;

/// Every symbol of the header, in header order. All are resolved when the library is loaded.
pub const SYMBOLS: [&str; 17] = [
    "NewSdk",
    "Init",
    "GetChatData",
    "DecryptData",
    "GetMediaData",
    "DestroySdk",
    "NewSlice",
    "FreeSlice",
    "GetContentFromSlice",
    "GetSliceLen",
    "NewMediaData",
    "FreeMediaData",
    "GetOutIndexBuf",
    "GetData",
    "GetIndexLen",
    "GetDataLen",
    "IsMediaDataFinish",
];

type Opaque = *mut c_void;
type NewSdkFn = unsafe extern "C" fn() -> Opaque;
type InitFn = unsafe extern "C" fn(Opaque, *const c_char, *const c_char) -> c_int;
type GetChatDataFn = unsafe extern "C" fn(
    Opaque,
    c_ulonglong,
    c_uint,
    *const c_char,
    *const c_char,
    c_int,
    Opaque,
) -> c_int;
type DecryptDataFn = unsafe extern "C" fn(*const c_char, *const c_char, Opaque) -> c_int;
type GetMediaDataFn = unsafe extern "C" fn(
    Opaque,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    c_int,
    Opaque,
) -> c_int;
type VoidFn = unsafe extern "C" fn(Opaque);
type NewFn = unsafe extern "C" fn() -> Opaque;
type PtrFn = unsafe extern "C" fn(Opaque) -> *mut c_char;
type IntFn = unsafe extern "C" fn(Opaque) -> c_int;

/// Why the library could not be used. Every message names the path and says what to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// `dlopen` failed (missing file, wrong architecture, unresolved dependency).
    Open { path: String, reason: String },
    /// The library lacks symbols of the header (all missing names are listed).
    MissingSymbols {
        path: String,
        missing: Vec<&'static str>,
    },
    /// `NewSdk` returned NULL.
    NewSdkFailed { path: String },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Open { path, reason } => write!(
                f,
                "cannot load the sdk library {path}: {reason}; check [sdk] library"
            ),
            LoadError::MissingSymbols { path, missing } => write!(
                f,
                "the sdk library {path} lacks symbol(s) of WeWorkFinanceSdk_C.h: {}; check [sdk] \
                 library points at libWeWorkFinanceSdk_C.so",
                missing.join(", ")
            ),
            LoadError::NewSdkFailed { path } => {
                write!(f, "NewSdk of the sdk library {path} returned NULL")
            }
        }
    }
}

/// `dlerror` text usually starts with the path; it is said once, by [`LoadError`]'s message.
fn dlerror_reason(path: &str, err: &libloading::Error) -> String {
    let text = err.to_string();
    match text.strip_prefix(path).and_then(|r| r.strip_prefix(": ")) {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

/// The loaded library with every symbol resolved.
pub struct SdkLibrary {
    path: String,
    // Kept (never dropped) so that the function pointers below stay valid for the process's life.
    _lib: ManuallyDrop<libloading::Library>,
    new_sdk: NewSdkFn,
    init: InitFn,
    get_chat_data: GetChatDataFn,
    decrypt_data: DecryptDataFn,
    get_media_data: GetMediaDataFn,
    destroy_sdk: VoidFn,
    new_slice: NewFn,
    free_slice: VoidFn,
    get_content_from_slice: PtrFn,
    get_slice_len: IntFn,
    new_media_data: NewFn,
    free_media_data: VoidFn,
    get_out_index_buf: PtrFn,
    get_data: PtrFn,
    get_index_len: IntFn,
    get_data_len: IntFn,
    is_media_data_finish: IntFn,
}

/// Looks up `name` as a `T`, recording it as missing on failure.
///
/// # Safety
/// `T` must be the exact function pointer type the header declares for `name`.
unsafe fn symbol<T: Copy>(
    lib: &libloading::Library,
    name: &'static str,
    missing: &mut Vec<&'static str>,
) -> Option<T> {
    let mut cname = Vec::with_capacity(name.len() + 1);
    cname.extend_from_slice(name.as_bytes());
    cname.push(0);
    // SAFETY: the caller guarantees `T` matches the symbol's C type; the pointer is copied out of the
    // `Symbol` and stays valid because the library is never unloaded (`ManuallyDrop` in `SdkLibrary`).
    match unsafe { lib.get::<T>(&cname) } {
        Ok(sym) => Some(*sym),
        Err(_) => {
            missing.push(name);
            None
        }
    }
}

impl SdkLibrary {
    /// Loads the library from `path` (`RTLD_NOW | RTLD_LOCAL`: unresolved dependencies fail here, and
    /// the library's own statically linked OpenSSL symbols stay out of the global namespace) and
    /// resolves every symbol of the header.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        use libloading::os::unix::{Library as UnixLibrary, RTLD_LOCAL, RTLD_NOW};
        let shown = path.display().to_string();
        // SAFETY: loading runs the library's initialisers. That is the reason this code only ever runs
        // in the disposable worker process, never in the pipeline.
        let lib: libloading::Library =
            unsafe { UnixLibrary::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
                .map_err(|e| LoadError::Open {
                    reason: dlerror_reason(&shown, &e),
                    path: shown.clone(),
                })?
                .into();
        let mut missing = Vec::new();
        let m = &mut missing;
        // SAFETY (every `symbol` call below): the type is the one WeWorkFinanceSdk_C.h declares.
        let (
            new_sdk,
            init,
            get_chat_data,
            decrypt_data,
            get_media_data,
            destroy_sdk,
            new_slice,
            free_slice,
            get_content_from_slice,
            get_slice_len,
            new_media_data,
            free_media_data,
            get_out_index_buf,
            get_data,
            get_index_len,
            get_data_len,
            is_media_data_finish,
        ) = unsafe {
            (
                symbol::<NewSdkFn>(&lib, "NewSdk", m),
                symbol::<InitFn>(&lib, "Init", m),
                symbol::<GetChatDataFn>(&lib, "GetChatData", m),
                symbol::<DecryptDataFn>(&lib, "DecryptData", m),
                symbol::<GetMediaDataFn>(&lib, "GetMediaData", m),
                symbol::<VoidFn>(&lib, "DestroySdk", m),
                symbol::<NewFn>(&lib, "NewSlice", m),
                symbol::<VoidFn>(&lib, "FreeSlice", m),
                symbol::<PtrFn>(&lib, "GetContentFromSlice", m),
                symbol::<IntFn>(&lib, "GetSliceLen", m),
                symbol::<NewFn>(&lib, "NewMediaData", m),
                symbol::<VoidFn>(&lib, "FreeMediaData", m),
                symbol::<PtrFn>(&lib, "GetOutIndexBuf", m),
                symbol::<PtrFn>(&lib, "GetData", m),
                symbol::<IntFn>(&lib, "GetIndexLen", m),
                symbol::<IntFn>(&lib, "GetDataLen", m),
                symbol::<IntFn>(&lib, "IsMediaDataFinish", m),
            )
        };
        let all = (|| {
            Some(Self {
                path: shown.clone(),
                new_sdk: new_sdk?,
                init: init?,
                get_chat_data: get_chat_data?,
                decrypt_data: decrypt_data?,
                get_media_data: get_media_data?,
                destroy_sdk: destroy_sdk?,
                new_slice: new_slice?,
                free_slice: free_slice?,
                get_content_from_slice: get_content_from_slice?,
                get_slice_len: get_slice_len?,
                new_media_data: new_media_data?,
                free_media_data: free_media_data?,
                get_out_index_buf: get_out_index_buf?,
                get_data: get_data?,
                get_index_len: get_index_len?,
                get_data_len: get_data_len?,
                is_media_data_finish: is_media_data_finish?,
                _lib: ManuallyDrop::new(lib),
            })
        })();
        all.ok_or(LoadError::MissingSymbols {
            path: shown,
            missing,
        })
    }

    /// `DecryptData` (no SDK handle needed). Returns the return code and the plaintext.
    pub fn decrypt_data(&self, encrypt_key: &CStr, encrypt_msg: &CStr) -> (i32, Vec<u8>) {
        let slice = OwnedSlice::new(self);
        // SAFETY: both strings are NUL-terminated and outlive the call; the slice comes from NewSlice.
        let ret = unsafe {
            (self.decrypt_data)(
                encrypt_key.as_ptr(),
                encrypt_msg.as_ptr(),
                slice.ptr.as_ptr(),
            )
        };
        (ret, slice.contents())
    }
}

/// A `Slice_t` from `NewSlice`, freed with `FreeSlice` on drop.
struct OwnedSlice<'a> {
    lib: &'a SdkLibrary,
    ptr: NonNull<c_void>,
}

impl<'a> OwnedSlice<'a> {
    fn new(lib: &'a SdkLibrary) -> Self {
        // SAFETY: NewSlice takes no arguments and returns a heap Slice_t owned by the caller.
        let raw = unsafe { (lib.new_slice)() };
        // An allocation failure inside the library: nothing sensible is left to do in this process.
        let ptr = NonNull::new(raw).unwrap_or_else(|| {
            eprintln!("wecom-sdk-worker: NewSlice returned NULL");
            std::process::abort()
        });
        Self { lib, ptr }
    }

    /// The slice's bytes, read by length.
    fn contents(&self) -> Vec<u8> {
        // SAFETY: the pointer came from NewSlice and has not been freed.
        let (buf, len) = unsafe {
            (
                (self.lib.get_content_from_slice)(self.ptr.as_ptr()),
                (self.lib.get_slice_len)(self.ptr.as_ptr()),
            )
        };
        // SAFETY: the library guarantees `len` readable bytes at `buf` while the slice lives.
        unsafe { copy_by_len(buf, len) }
    }
}

impl Drop for OwnedSlice<'_> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from NewSlice and is freed exactly once, here.
        unsafe { (self.lib.free_slice)(self.ptr.as_ptr()) }
    }
}

/// A `MediaData_t` from `NewMediaData`, freed with `FreeMediaData` on drop.
struct OwnedMedia<'a> {
    lib: &'a SdkLibrary,
    ptr: NonNull<c_void>,
}

impl<'a> OwnedMedia<'a> {
    fn new(lib: &'a SdkLibrary) -> Self {
        // SAFETY: NewMediaData takes no arguments and returns a heap MediaData_t owned by the caller.
        let raw = unsafe { (lib.new_media_data)() };
        let ptr = NonNull::new(raw).unwrap_or_else(|| {
            eprintln!("wecom-sdk-worker: NewMediaData returned NULL");
            std::process::abort()
        });
        Self { lib, ptr }
    }

    fn read(&self) -> MediaOut {
        let p = self.ptr.as_ptr();
        // SAFETY: the pointer came from NewMediaData and has not been freed; accessors only read it.
        let (index, index_len, data, data_len, finish) = unsafe {
            (
                (self.lib.get_out_index_buf)(p),
                (self.lib.get_index_len)(p),
                (self.lib.get_data)(p),
                (self.lib.get_data_len)(p),
                (self.lib.is_media_data_finish)(p),
            )
        };
        MediaOut {
            // SAFETY: the library guarantees the announced lengths while the MediaData_t lives.
            outindexbuf: unsafe { copy_by_len(index, index_len) },
            // SAFETY: as above.
            data: unsafe { copy_by_len(data, data_len) },
            is_finish: finish != 0,
        }
    }
}

impl Drop for OwnedMedia<'_> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from NewMediaData and is freed exactly once, here.
        unsafe { (self.lib.free_media_data)(self.ptr.as_ptr()) }
    }
}

/// Copies `len` bytes from `buf`; NULL or a non-positive length is empty.
///
/// # Safety
/// When `buf` is not NULL and `len > 0`, `len` bytes at `buf` must be readable.
unsafe fn copy_by_len(buf: *const c_char, len: c_int) -> Vec<u8> {
    match usize::try_from(len) {
        Ok(n) if n > 0 && !buf.is_null() => {
            // SAFETY: guaranteed by the caller.
            unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), n) }.to_vec()
        }
        _ => Vec::new(),
    }
}

/// One `GetMediaData` result.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MediaOut {
    pub data: Vec<u8>,
    pub outindexbuf: Vec<u8>,
    pub is_finish: bool,
}

/// One SDK instance (`NewSdk` … `DestroySdk`). Created once per worker process and used from one
/// thread (it is neither `Send` nor `Sync`).
pub struct Sdk {
    lib: SdkLibrary,
    handle: NonNull<c_void>,
}

impl Sdk {
    /// `NewSdk`.
    pub fn new(lib: SdkLibrary) -> Result<Self, LoadError> {
        // SAFETY: NewSdk takes no arguments and returns an owned handle (or NULL).
        let raw = unsafe { (lib.new_sdk)() };
        let handle = NonNull::new(raw).ok_or_else(|| LoadError::NewSdkFailed {
            path: lib.path.clone(),
        })?;
        Ok(Self { lib, handle })
    }

    /// `Init(sdk, corpid, secret)`.
    pub fn init(&mut self, corp_id: &CStr, secret: &CStr) -> i32 {
        // SAFETY: the handle is live; both strings are NUL-terminated and outlive the call.
        unsafe { (self.lib.init)(self.handle.as_ptr(), corp_id.as_ptr(), secret.as_ptr()) }
    }

    /// `GetChatData`; returns the return code and the JSON text.
    pub fn get_chat_data(
        &self,
        seq: u64,
        limit: u32,
        proxy: &CStr,
        passwd: &CStr,
        timeout_secs: i32,
    ) -> (i32, Vec<u8>) {
        let slice = OwnedSlice::new(&self.lib);
        // SAFETY: the handle is live, strings are NUL-terminated and outlive the call, the slice
        // comes from NewSlice.
        let ret = unsafe {
            (self.lib.get_chat_data)(
                self.handle.as_ptr(),
                seq,
                limit,
                proxy.as_ptr(),
                passwd.as_ptr(),
                timeout_secs,
                slice.ptr.as_ptr(),
            )
        };
        (ret, slice.contents())
    }

    /// `DecryptData` (see [`SdkLibrary::decrypt_data`]).
    pub fn decrypt_data(&self, encrypt_key: &CStr, encrypt_msg: &CStr) -> (i32, Vec<u8>) {
        self.lib.decrypt_data(encrypt_key, encrypt_msg)
    }

    /// `GetMediaData`: one chunk (at most 512 KiB) of a media file.
    pub fn get_media_data(
        &self,
        indexbuf: &CStr,
        sdkfileid: &CStr,
        proxy: &CStr,
        passwd: &CStr,
        timeout_secs: i32,
    ) -> (i32, MediaOut) {
        let media = OwnedMedia::new(&self.lib);
        // SAFETY: the handle is live, strings are NUL-terminated and outlive the call, the media
        // struct comes from NewMediaData.
        let ret = unsafe {
            (self.lib.get_media_data)(
                self.handle.as_ptr(),
                indexbuf.as_ptr(),
                sdkfileid.as_ptr(),
                proxy.as_ptr(),
                passwd.as_ptr(),
                timeout_secs,
                media.ptr.as_ptr(),
            )
        };
        (ret, media.read())
    }
}

impl Drop for Sdk {
    fn drop(&mut self) {
        // SAFETY: the handle came from NewSdk and is destroyed exactly once, here.
        unsafe { (self.lib.destroy_sdk)(self.handle.as_ptr()) }
    }
}

/// Moves the process's stdout (fd 1) to a new descriptor reserved for the protocol and points fd 1 at
/// stderr, so anything the library prints lands in the log instead of corrupting the frames.
pub fn take_stdout_for_protocol() -> std::io::Result<File> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on fd 1 only creates a new descriptor.
    let fd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: dup2 replaces fd 1 with a copy of fd 2; both are open descriptors of this process.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}
