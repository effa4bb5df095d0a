//! Libraries the window opens while it runs instead of linking them, so the loader cannot name
//! a missing one at start-up: it would surface later as a panic deep inside a dependency. They
//! are looked for first, and a missing one is named with the package that brings it.

/// A library opened at run time: its file names (any one will do), what it is for, and the
/// Debian/Ubuntu package that installs it.
pub struct RuntimeLib {
    pub names: &'static [&'static str],
    pub purpose: &'static str,
    pub package: &'static str,
}

/// winit's X11 keyboard support.
pub const XKBCOMMON_X11: RuntimeLib = RuntimeLib {
    names: &["libxkbcommon-x11.so.0"],
    purpose: "keyboard input in an X11 window",
    package: "libxkbcommon-x11-0",
};

/// The tray icon (tray-icon shows it through Ayatana or the older `AppIndicator`).
pub const APPINDICATOR: RuntimeLib = RuntimeLib {
    names: &["libayatana-appindicator3.so.1", "libappindicator3.so.1"],
    purpose: "the tray icon",
    package: "libayatana-appindicator3-1",
};

impl RuntimeLib {
    /// `None` when one of its files loads, else what to install, in words.
    pub fn missing(&self) -> Option<String> {
        let found = self.names.iter().any(|name| {
            // SAFETY: system libraries whose initialisers take no arguments and have no
            // preconditions; winit and tray-icon open the same files moments later.
            #[allow(unsafe_code)]
            let lib = unsafe { libloading::Library::new(name) };
            lib.is_ok()
        });
        (!found).then(|| {
            format!(
                "{} needs {} ({}), which is not installed; on Debian/Ubuntu: sudo apt-get install {}",
                self.purpose,
                self.names[0],
                self.package,
                self.package
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_named_with_its_package() {
        let present = RuntimeLib {
            names: &["libcandybar-nowhere.so.9", "libc.so.6"],
            purpose: "testing",
            package: "libc6",
        };
        assert_eq!(present.missing(), None);
        let absent = RuntimeLib {
            names: &["libcandybar-nowhere.so.9"],
            purpose: "the tray icon",
            package: "libcandybar-nowhere9",
        };
        let words = absent.missing().unwrap();
        assert!(
            words.starts_with("the tray icon needs libcandybar-nowhere.so.9"),
            "{words}"
        );
        assert!(
            words.ends_with("sudo apt-get install libcandybar-nowhere9"),
            "{words}"
        );
    }
}
