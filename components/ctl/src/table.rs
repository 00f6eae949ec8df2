//! Plain-text tables: one header row, aligned columns separated by two spaces.

/// Column alignment; numbers read best right-aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table built row by row and rendered once.
pub struct Table {
    headers: Vec<&'static str>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with the given `(header, alignment)` columns.
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| *h).collect(),
            aligns: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty, extra cells are dropped.
    pub fn push(&mut self, mut row: Vec<String>) {
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// Renders the table; every line ends with a newline and has no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .zip(&self.aligns)
                .map(|((cell, width), align)| match align {
                    Align::Left => format!("{cell:<width$}"),
                    Align::Right => format!("{cell:>width$}"),
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_to_the_widest_cell() {
        let mut table = Table::new(&[("ID", Align::Right), ("ADDRESS", Align::Left)]);
        table.push(vec!["1".into(), "127.0.0.1:20160".into()]);
        table.push(vec!["12".into(), "h:1".into()]);
        assert_eq!(
            table.render(),
            "ID  ADDRESS\n 1  127.0.0.1:20160\n12  h:1\n"
        );
    }

    #[test]
    fn short_rows_are_padded_and_lines_have_no_trailing_spaces() {
        let mut table = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        table.push(vec!["long-cell".into()]);
        assert_eq!(table.render(), "A          B\nlong-cell\n");
    }
}
