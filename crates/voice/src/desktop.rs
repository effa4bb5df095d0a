//! Putting a transcript where the user is: on the clipboard (arboard) and typed into the focused
//! window (enigo, X11 through `XTest`). Both run on the dictation worker, never on the UI thread.

/// Holds the clipboard and the keyboard connection between transcripts.
///
/// On X11 the clipboard's contents live in the program that set them: arboard serves them from
/// a thread of its own for as long as a `Clipboard` exists, so one is kept here.
#[derive(Default)]
pub struct Desktop {
    clipboard: Option<arboard::Clipboard>,
    keyboard: Option<enigo::Enigo>,
}

impl Desktop {
    /// Puts `text` on the clipboard.
    pub fn copy(&mut self, text: &str) -> Result<(), String> {
        if self.clipboard.is_none() {
            self.clipboard = Some(arboard::Clipboard::new().map_err(|e| {
                format!("no clipboard ({e}); on Linux it needs an X11 or Wayland session")
            })?);
        }
        let Some(cb) = &mut self.clipboard else {
            return Err("no clipboard".into());
        };
        cb.set_text(text.to_owned()).map_err(|e| {
            self.clipboard = None; // reconnect next time
            format!("the clipboard refused the text: {e}")
        })
    }

    /// Types `text` into the window that has the keyboard focus, as if it were typed.
    pub fn type_text(&mut self, text: &str) -> Result<(), String> {
        use enigo::Keyboard as _;
        if self.keyboard.is_none() {
            let settings = enigo::Settings {
                // The X server spaces key events by this many ms; 0 lets some programs drop keys.
                linux_delay: 1,
                ..enigo::Settings::default()
            };
            self.keyboard = Some(enigo::Enigo::new(&settings).map_err(|e| {
                format!(
                    "cannot type into other windows ({e}); this needs an X11 session \
                     (on Wayland, use the clipboard output)"
                )
            })?);
        }
        let Some(kb) = &mut self.keyboard else {
            return Err("no keyboard".into());
        };
        kb.text(text).map_err(|e| {
            self.keyboard = None;
            format!("typing failed: {e}")
        })
    }

    /// Types `text`; where typing is impossible, puts it on the clipboard instead and says so.
    pub fn type_or_copy(&mut self, text: &str) -> Result<(), String> {
        match self.type_text(text) {
            Ok(()) => Ok(()),
            Err(e) => match self.copy(text) {
                Ok(()) => Err(format!("{e}; the text is on the clipboard instead")),
                Err(_) => Err(e),
            },
        }
    }
}
