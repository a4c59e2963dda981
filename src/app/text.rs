//! One line of editable text (the search box, the days and path fields): a cursor, the
//! readline keys, and a pre-filled text selected on opening, so typing or pasting replaces
//! it (`90` then `30` gives `30`), as in a browser's address bar.

/// An edit the keymap asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    Left,
    Right,
    Home,
    End,
    Backspace,
    Delete,
    /// Ctrl-U: everything before the cursor.
    DeleteToStart,
    /// Ctrl-W: the word before the cursor (and the spaces after it).
    DeleteWord,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextField {
    text: String,
    /// In characters, 0..=len.
    cursor: usize,
    /// The whole text is selected: what is typed or pasted replaces it.
    selected: bool,
}

impl TextField {
    /// `text`, the cursor at its end.
    pub fn new(text: &str) -> Self {
        TextField {
            text: text.to_string(),
            cursor: text.chars().count(),
            selected: false,
        }
    }

    /// `text`, selected: the first key typed replaces it, an arrow keeps it.
    pub fn selected(text: &str) -> Self {
        TextField {
            selected: !text.is_empty(),
            ..TextField::new(text)
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, in characters.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_selected(&self) -> bool {
        self.selected
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| i)
    }

    /// Typed or pasted text: replaces the selection, else goes in at the cursor.
    pub fn insert(&mut self, text: &str) {
        if std::mem::take(&mut self.selected) {
            self.text.clear();
            self.cursor = 0;
        }
        let at = self.byte_at(self.cursor);
        self.text.insert_str(at, text);
        self.cursor += text.chars().count();
    }

    /// Applies `edit`; true when the text changed.
    pub fn edit(&mut self, edit: Edit) -> bool {
        let len = self.text.chars().count();
        if std::mem::take(&mut self.selected) {
            match edit {
                // Deleting a selection deletes it all.
                Edit::Backspace | Edit::Delete | Edit::DeleteToStart | Edit::DeleteWord => {
                    self.text.clear();
                    self.cursor = 0;
                    return true;
                }
                Edit::Left | Edit::Home => {
                    self.cursor = 0;
                    return false;
                }
                Edit::Right | Edit::End => {
                    self.cursor = len;
                    return false;
                }
            }
        }
        match edit {
            Edit::Left => self.cursor = self.cursor.saturating_sub(1),
            Edit::Right => self.cursor = (self.cursor + 1).min(len),
            Edit::Home => self.cursor = 0,
            Edit::End => self.cursor = len,
            Edit::Backspace if self.cursor > 0 => {
                let (from, to) = (self.byte_at(self.cursor - 1), self.byte_at(self.cursor));
                self.text.replace_range(from..to, "");
                self.cursor -= 1;
                return true;
            }
            Edit::Delete if self.cursor < len => {
                let (from, to) = (self.byte_at(self.cursor), self.byte_at(self.cursor + 1));
                self.text.replace_range(from..to, "");
                return true;
            }
            Edit::DeleteToStart if self.cursor > 0 => {
                let to = self.byte_at(self.cursor);
                self.text.replace_range(..to, "");
                self.cursor = 0;
                return true;
            }
            Edit::DeleteWord if self.cursor > 0 => {
                let before: Vec<char> = self.text.chars().take(self.cursor).collect();
                let mut start = before.len();
                while start > 0 && before[start - 1].is_whitespace() {
                    start -= 1;
                }
                while start > 0 && !before[start - 1].is_whitespace() {
                    start -= 1;
                }
                let (from, to) = (self.byte_at(start), self.byte_at(self.cursor));
                self.text.replace_range(from..to, "");
                self.cursor = start;
                return true;
            }
            Edit::Backspace | Edit::Delete | Edit::DeleteToStart | Edit::DeleteWord => {}
        }
        false
    }

    /// The text with a bar at the cursor (a selection in brackets), for the screen.
    pub fn shown(&self) -> String {
        if self.selected {
            return format!("[{}]▏", self.text);
        }
        let at = self.byte_at(self.cursor);
        format!("{}▏{}", &self.text[..at], &self.text[at..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrows_home_end_and_deletes_work_at_the_cursor() {
        let mut f = TextField::new("grace hopper");
        f.edit(Edit::Home);
        f.edit(Edit::Right);
        f.insert("R");
        assert_eq!(f.text(), "gRrace hopper");
        f.edit(Edit::Backspace);
        f.edit(Edit::Delete);
        assert_eq!(f.text(), "gace hopper");
        f.edit(Edit::End);
        assert!(f.edit(Edit::DeleteWord));
        assert_eq!((f.text(), f.cursor()), ("gace ", 5));
        assert!(f.edit(Edit::DeleteWord));
        assert_eq!(f.text(), "");
        let mut f = TextField::new("Mei Chen 陈");
        f.edit(Edit::Left);
        f.edit(Edit::Left);
        assert!(f.edit(Edit::DeleteToStart));
        assert_eq!((f.text(), f.cursor()), (" 陈", 0));
        f.edit(Edit::End);
        f.edit(Edit::Backspace);
        assert_eq!(f.text(), " ");
        assert_eq!(f.shown(), " ▏");
    }

    #[test]
    fn a_selected_text_is_replaced_by_what_is_typed_or_pasted() {
        let mut f = TextField::selected("90");
        f.insert("30");
        assert_eq!(f.text(), "30");
        let mut f = TextField::selected("90");
        assert!(f.edit(Edit::Backspace));
        assert_eq!(f.text(), "");
        // An arrow keeps it and ends the selection: then the paste goes in at the cursor.
        let mut f = TextField::selected("/data/rotated.csv");
        f.edit(Edit::Home);
        f.insert("/tmp");
        assert_eq!(f.text(), "/tmp/data/rotated.csv");
    }
}
