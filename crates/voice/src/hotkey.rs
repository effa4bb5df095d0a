//! The global hotkey (global-hotkey, X11): hold to talk, or tap to start and tap again to stop.
//! Its events go straight to the dictation worker, not through the UI thread, so a hidden or
//! busy window does not delay a recording.

use global_hotkey::hotkey::HotKey;
use global_hotkey::{GlobalHotKeyEvent, GlobalHotKeyManager, HotKeyState};

use crate::dictation::{Dictation, Request};

pub use candybar_core::voice::{DEFAULT_HOTKEY, HotkeyMode};

/// What a hotkey event asks of dictation in `mode`.
#[must_use]
pub fn request_for(mode: HotkeyMode, state: HotKeyState) -> Option<Request> {
    match (mode, state) {
        (HotkeyMode::Hold, HotKeyState::Pressed) => Some(Request::Start),
        (HotkeyMode::Hold, HotKeyState::Released) => Some(Request::StopDictation),
        (HotkeyMode::Toggle, HotKeyState::Pressed) => Some(Request::Toggle),
        (HotkeyMode::Toggle, HotKeyState::Released) => None,
    }
}

/// Reads "Ctrl+Alt+Space", "super+shift+KeyD", "F9" … into a hotkey, or says what is wrong.
pub fn parse(combo: &str) -> Result<HotKey, String> {
    // global-hotkey wants "control"/"KeyD"-style names; accept what people write.
    let words: Vec<String> = combo
        .split('+')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| match w.to_ascii_lowercase().as_str() {
            "ctrl" | "control" => "control".to_owned(),
            "win" | "meta" | "cmd" | "command" => "super".to_owned(),
            "option" => "alt".to_owned(),
            _ if w.len() == 1 && w.chars().all(|c| c.is_ascii_alphabetic()) => {
                format!("Key{}", w.to_ascii_uppercase())
            }
            _ if w.len() == 1 && w.chars().all(|c| c.is_ascii_digit()) => format!("Digit{w}"),
            _ => w.to_owned(),
        })
        .collect();
    if words.is_empty() {
        return Err("the hotkey is empty: write e.g. Ctrl+Alt+Space".into());
    }
    words
        .join("+")
        .parse::<HotKey>()
        .map_err(|e| format!("{combo:?} is not a hotkey ({e}); write e.g. Ctrl+Alt+Space"))
}

/// A registered hotkey; dropping it gives the keys back.
pub struct Hotkey {
    manager: GlobalHotKeyManager,
    key: HotKey,
    pub combo: String,
    pub mode: HotkeyMode,
}

impl Hotkey {
    /// Grabs `combo` on the X server and sends its presses to `dictation` in `mode`.
    pub fn register(combo: &str, mode: HotkeyMode, dictation: Dictation) -> Result<Self, String> {
        if cfg!(target_os = "linux") && std::env::var_os("DISPLAY").is_none() {
            return Err(if std::env::var_os("WAYLAND_DISPLAY").is_some() {
                "global hotkeys need X11; on Wayland, bind a shortcut in your desktop's settings \
                 to `candybar dictate --toggle`"
                    .into()
            } else {
                "no display, so no global hotkey; `candybar dictate --toggle` works instead".into()
            });
        }
        let key = parse(combo)?;
        let manager = GlobalHotKeyManager::new().map_err(|e| format!("no global hotkeys: {e}"))?;
        manager.register(key).map_err(|e| match e {
            global_hotkey::Error::AlreadyRegistered(_) => format!(
                "{combo} is already taken by another program: choose another hotkey in the \
                 Dictation settings"
            ),
            other => format!("cannot use {combo} as a hotkey: {other}"),
        })?;
        let id = key.id();
        GlobalHotKeyEvent::set_event_handler(Some(move |e: GlobalHotKeyEvent| {
            if e.id == id
                && let Some(r) = request_for(mode, e.state)
            {
                tracing::debug!("hotkey {:?}", e.state);
                dictation.send(r);
            }
        }));
        Ok(Self {
            manager,
            key,
            combo: combo.to_owned(),
            mode,
        })
    }
}

impl Drop for Hotkey {
    fn drop(&mut self) {
        GlobalHotKeyEvent::set_event_handler(None::<fn(GlobalHotKeyEvent)>);
        let _ = self.manager.unregister(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hotkeys_as_people_write_them() {
        let a = parse("Ctrl+Alt+Space").unwrap();
        assert_eq!(a, parse("control+alt+Space").unwrap());
        assert_eq!(
            parse("ctrl + shift + d").unwrap(),
            parse("control+shift+KeyD").unwrap()
        );
        assert!(parse("F9").is_ok());
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("Ctrl+Banana").unwrap_err().contains("not a hotkey"));
    }

    #[test]
    fn hold_records_while_held_and_toggle_flips_on_press() {
        assert!(matches!(
            request_for(HotkeyMode::Hold, HotKeyState::Pressed),
            Some(Request::Start)
        ));
        assert!(matches!(
            request_for(HotkeyMode::Hold, HotKeyState::Released),
            Some(Request::StopDictation)
        ));
        assert!(matches!(
            request_for(HotkeyMode::Toggle, HotKeyState::Pressed),
            Some(Request::Toggle)
        ));
        assert!(request_for(HotkeyMode::Toggle, HotKeyState::Released).is_none());
    }
}
