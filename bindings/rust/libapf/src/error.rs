// SPDX-License-Identifier: MIT
//! `Error`: one variant per `APF_E*` code of `apf/error.h` (values equal Linux's `-errno`).
use std::ffi::CStr;
use std::fmt;

use libapf_sys as sys;

macro_rules! errors {
    ($($variant:ident = $code:ident, $name:literal;)*) => {
        /// A libapf error: one variant per `APF_E*` code, in the order of `APF_ERRNO_MAP`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Error {
            $(
                #[doc = concat!("`APF_", $name, "`")]
                $variant,
            )*
            /// A negative code this version of the bindings does not know (the C list is
            /// append-only: a newer libapf may add one). libapf 0.2 never returns it.
            Unknown(i32),
        }

        impl Error {
            /// The C code (negative).
            pub fn code(self) -> i32 {
                match self {
                    $(Error::$variant => sys::$code,)*
                    Error::Unknown(c) => c,
                }
            }

            /// The variant of an `APF_E*` code; `None` for a code not in the list.
            pub fn from_code(code: i32) -> Option<Error> {
                match code {
                    $(c if c == sys::$code => Some(Error::$variant),)*
                    _ => None,
                }
            }

            /// The symbolic name, e.g. `"EINVAL"` (as `apf_err_name()`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Error::$variant => $name,)*
                    Error::Unknown(_) => "UNKNOWN",
                }
            }

            /// Every named variant, in the C list's order.
            pub const ALL: &'static [Error] = &[$(Error::$variant,)*];
        }
    };
}

errors! {
    Perm = APF_EPERM, "EPERM";
    NoEnt = APF_ENOENT, "ENOENT";
    Intr = APF_EINTR, "EINTR";
    Io = APF_EIO, "EIO";
    TooBig = APF_E2BIG, "E2BIG";
    Again = APF_EAGAIN, "EAGAIN";
    NoMem = APF_ENOMEM, "ENOMEM";
    Fault = APF_EFAULT, "EFAULT";
    Busy = APF_EBUSY, "EBUSY";
    Exist = APF_EEXIST, "EEXIST";
    NoDev = APF_ENODEV, "ENODEV";
    Inval = APF_EINVAL, "EINVAL";
    NoSpc = APF_ENOSPC, "ENOSPC";
    Range = APF_ERANGE, "ERANGE";
    NoSys = APF_ENOSYS, "ENOSYS";
    Proto = APF_EPROTO, "EPROTO";
    Overflow = APF_EOVERFLOW, "EOVERFLOW";
    OpNotSupp = APF_EOPNOTSUPP, "EOPNOTSUPP";
    ConnReset = APF_ECONNRESET, "ECONNRESET";
    TimedOut = APF_ETIMEDOUT, "ETIMEDOUT";
    Already = APF_EALREADY, "EALREADY";
    Stale = APF_ESTALE, "ESTALE";
    Canceled = APF_ECANCELED, "ECANCELED";
}

impl Error {
    /// The error of a negative C return value (a non-negative value is not an error).
    pub fn from_raw(code: i32) -> Error {
        Error::from_code(code).unwrap_or(Error::Unknown(code))
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A C return value: non-negative is success (the value), negative an [`Error`].
pub(crate) fn check(rc: i32) -> Result<u32> {
    if rc < 0 {
        Err(Error::from_raw(rc))
    } else {
        Ok(rc as u32)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: apf_strerror() accepts any value and returns a static NUL-terminated string,
        // never NULL.
        let msg = unsafe { CStr::from_ptr(sys::apf_strerror(self.code())) };
        write!(f, "{} ({})", msg.to_string_lossy(), self.name())
    }
}

impl std::error::Error for Error {}
