//! The parts of include/circus/plugin.h (ABI 1.0) this plugin uses, declared by hand.
//! Every struct is #[repr(C)] with the header's members in the header's order; a member
//! the plugin never calls is still declared (as an Option of its function type), so
//! the layout matches. Keep this file in step with the header's major version.

#![allow(non_camel_case_types, dead_code)]

use std::os::raw::{c_char, c_int, c_void};

pub const CIRCUS_ABI_MAJOR: u32 = 1;
pub const CIRCUS_ABI_MINOR: u32 = 0;
pub const CIRCUS_PLUGIN_MAGIC: u32 = 0x4352_4350;

pub type circus_status = i32;
pub const CIRCUS_OK: circus_status = 0;
pub const CIRCUS_E_INVALID: circus_status = -1;
pub const CIRCUS_E_INTERNAL: circus_status = -6;

pub type circus_log_level = i32;
pub const CIRCUS_LOG_INFO: circus_log_level = 2;

pub const CIRCUS_COMMAND_F_READ_ONLY: u64 = 1 << 0;
pub const CIRCUS_PLUGIN_F_MULTI_INSTANCE: u64 = 1 << 1;

pub type circus_handle = u64;

/// UTF-8 bytes and their length (no NUL counted).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct circus_str {
    pub ptr: *const c_char,
    pub len: usize,
}

impl circus_str {
    /// A view of `s`, valid while `s` lives (the host copies what it keeps).
    pub fn of(s: &str) -> circus_str {
        circus_str { ptr: s.as_ptr() as *const c_char, len: s.len() }
    }

    /// The host's bytes as text (borrowed: valid during the callback only).
    ///
    /// # Safety
    /// `self` must come from the host, within the callback that received it.
    pub unsafe fn as_str(&self) -> &str {
        if self.ptr.is_null() || self.len == 0 {
            return "";
        }
        let bytes = std::slice::from_raw_parts(self.ptr as *const u8, self.len);
        std::str::from_utf8(bytes).unwrap_or("")
    }
}

/// Opaque host types: only ever behind pointers.
#[repr(C)]
pub struct circus_host {
    _private: [u8; 0],
}
#[repr(C)]
pub struct circus_reply {
    _private: [u8; 0],
}
#[repr(C)]
pub struct circus_error {
    _private: [u8; 0],
}

pub type circus_dtor_fn = Option<unsafe extern "C" fn(ud: *mut c_void)>;
pub type circus_event_fn = Option<unsafe extern "C" fn(ud: *mut c_void, topic: circus_str, json: circus_str)>;
pub type circus_request_fn = Option<
    unsafe extern "C" fn(ud: *mut c_void, name: circus_str, args_json: circus_str, reply: *mut circus_reply),
>;
pub type circus_result_fn = Option<unsafe extern "C" fn(ud: *mut c_void, st: circus_status, json: circus_str)>;
pub type circus_timer_fn = Option<unsafe extern "C" fn(ud: *mut c_void, timer: circus_handle)>;
pub type circus_fd_fn = Option<unsafe extern "C" fn(ud: *mut c_void, fd: c_int, revents: u32)>;
pub type circus_task_fn = Option<unsafe extern "C" fn(ud: *mut c_void)>;

/// The host's function table, in the header's order.
#[repr(C)]
pub struct circus_host_api {
    pub struct_size: u32,
    pub abi_major: u32,
    pub abi_minor: u32,
    pub reserved0: u32,
    pub log: Option<unsafe extern "C" fn(h: *mut circus_host, level: circus_log_level, msg: circus_str)>,
    pub set_error: Option<unsafe extern "C" fn(err: *mut circus_error, code: circus_status, msg: circus_str)>,
    pub publish: Option<unsafe extern "C" fn(h: *mut circus_host, topic: circus_str, json: circus_str) -> circus_status>,
    pub subscribe: Option<
        unsafe extern "C" fn(
            h: *mut circus_host,
            topic_prefix: circus_str,
            f: circus_event_fn,
            ud: *mut c_void,
            dtor: circus_dtor_fn,
            out: *mut circus_handle,
        ) -> circus_status,
    >,
    pub unsubscribe: Option<unsafe extern "C" fn(h: *mut circus_host, subscription: circus_handle) -> circus_status>,
    pub register_command: Option<
        unsafe extern "C" fn(
            h: *mut circus_host,
            name: circus_str,
            meta_json: circus_str,
            flags: u64,
            f: circus_request_fn,
            ud: *mut c_void,
            dtor: circus_dtor_fn,
            out: *mut circus_handle,
        ) -> circus_status,
    >,
    pub reply: Option<unsafe extern "C" fn(reply: *mut circus_reply, st: circus_status, json: circus_str) -> circus_status>,
    pub call: Option<
        unsafe extern "C" fn(
            h: *mut circus_host,
            command: circus_str,
            args_json: circus_str,
            done: circus_result_fn,
            ud: *mut c_void,
        ) -> circus_status,
    >,
    pub register_hook: Option<
        unsafe extern "C" fn(
            h: *mut circus_host,
            watcher_glob: circus_str,
            hook_name: circus_str,
            f: circus_request_fn,
            ud: *mut c_void,
            dtor: circus_dtor_fn,
            out: *mut circus_handle,
        ) -> circus_status,
    >,
    pub add_timer: Option<
        unsafe extern "C" fn(
            h: *mut circus_host,
            delay_ms: u64,
            repeat_ms: u64,
            f: circus_timer_fn,
            ud: *mut c_void,
            dtor: circus_dtor_fn,
            out: *mut circus_handle,
        ) -> circus_status,
    >,
    pub watch_fd: Option<
        unsafe extern "C" fn(
            h: *mut circus_host,
            fd: c_int,
            events: u32,
            f: circus_fd_fn,
            ud: *mut c_void,
            dtor: circus_dtor_fn,
            out: *mut circus_handle,
        ) -> circus_status,
    >,
    pub cancel: Option<unsafe extern "C" fn(h: *mut circus_host, handle: circus_handle) -> circus_status>,
    pub post: Option<
        unsafe extern "C" fn(h: *mut circus_host, f: circus_task_fn, ud: *mut c_void, dtor: circus_dtor_fn) -> circus_status,
    >,
}

/// The input of create().
#[repr(C)]
pub struct circus_create_params {
    pub struct_size: u32,
    pub reserved0: u32,
    pub api: *const circus_host_api,
    pub host: *mut circus_host,
    pub instance_name: circus_str,
    pub config_json: circus_str,
    pub state_dir: circus_str,
}

/// The plugin's vtable.
#[repr(C)]
pub struct circus_plugin_vtable {
    pub struct_size: u32,
    pub reserved0: u32,
    pub create: Option<
        unsafe extern "C" fn(
            p: *const circus_create_params,
            out_instance: *mut *mut c_void,
            err: *mut circus_error,
        ) -> circus_status,
    >,
    pub start: Option<unsafe extern "C" fn(instance: *mut c_void, err: *mut circus_error) -> circus_status>,
    pub stop: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    pub destroy: Option<unsafe extern "C" fn(instance: *mut c_void)>,
    pub reconfigure:
        Option<unsafe extern "C" fn(instance: *mut c_void, config_json: circus_str, err: *mut circus_error) -> circus_status>,
}

/// The descriptor circus_plugin_describe() returns.
#[repr(C)]
pub struct circus_plugin_descriptor {
    pub magic: u32,
    pub struct_size: u32,
    pub abi_major: u32,
    pub abi_minor: u32,
    pub name: *const c_char,
    pub version: *const c_char,
    pub description: *const c_char,
    pub flags: u64,
    pub vtable: *const circus_plugin_vtable,
}

// The sizes the header gives these structs on 64-bit Linux (LP64): a mismatch here means
// this file no longer mirrors the header, and the build stops.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<circus_str>() == 16);
    assert!(std::mem::size_of::<circus_host_api>() == 16 + 13 * 8);
    assert!(std::mem::size_of::<circus_create_params>() == 8 + 8 + 8 + 3 * 16);
    assert!(std::mem::size_of::<circus_plugin_vtable>() == 8 + 5 * 8);
    assert!(std::mem::size_of::<circus_plugin_descriptor>() == 16 + 3 * 8 + 8 + 8);
};
