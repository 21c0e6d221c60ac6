//! Sequence numbers as decimal lines, as `walctl append` prints them: one per record, and with
//! `--lines` one per input line, so ten million of them for a large input.
//!
//! Appended records have consecutive numbers, so the decimal text is counted up in place
//! (usually one digit changes) instead of formatted anew by division for every number, and each
//! line is appended as a fixed-size array, then cut to length: a copy of fixed size compiles to
//! a few moves, where one of variable size calls `memcpy`. Formatting and copying each number
//! was an eighth of the command's time.

/// Room for the digits of `u64::MAX` and the newline.
const WIDTH: usize = 21;

/// The decimal text of the next number expected, with its newline.
pub(crate) struct SeqLines {
    /// The digits, left-aligned, then `\n`; the rest is unused.
    text: [u8; WIDTH],
    /// Digits in `text`.
    digits: usize,
    /// The number `text` holds.
    value: u64,
}

impl Default for SeqLines {
    fn default() -> SeqLines {
        let mut lines = SeqLines {
            text: [0; WIDTH],
            digits: 0,
            value: 0,
        };
        lines.set(0);
        lines
    }
}

impl SeqLines {
    /// Appends `n` and a newline to `out`.
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, n: u64) {
        if n != self.value {
            self.set(n);
        }
        let at = out.len();
        out.extend_from_slice(&self.text);
        out.truncate(at + self.digits + 1);
        self.count_up();
    }

    /// Formats `n` from scratch (for the first number, after a gap, and when a digit is added).
    fn set(&mut self, n: u64) {
        let mut digits = Vec::with_capacity(WIDTH);
        crate::jsonline::push_u64(&mut digits, n);
        self.value = n;
        self.digits = digits.len();
        self.text[..self.digits].copy_from_slice(&digits);
        self.text[self.digits] = b'\n';
    }

    /// Moves on to the next number: the last digit goes up, carrying over nines; a number of
    /// nines only (one more digit) is formatted anew.
    fn count_up(&mut self) {
        let Some(next) = self.value.checked_add(1) else {
            return; // u64::MAX: no number follows, and a push of another one sets it
        };
        for digit in self.text[..self.digits].iter_mut().rev() {
            if *digit == b'9' {
                *digit = b'0';
            } else {
                *digit += 1;
                self.value = next;
                return;
            }
        }
        self.set(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(numbers: impl IntoIterator<Item = u64>) -> (String, String) {
        let mut lines = SeqLines::default();
        let (mut out, mut expected) = (Vec::new(), String::new());
        for n in numbers {
            lines.push(&mut out, n);
            expected.push_str(&format!("{n}\n"));
        }
        (String::from_utf8(out).unwrap(), expected)
    }

    #[test]
    fn consecutive_numbers_across_every_added_digit_print_as_display_does() {
        for p in 1..20 {
            let ten = 10u64.pow(p);
            let (got, expected) = lines(ten.saturating_sub(12)..ten + 12);
            assert_eq!(got, expected, "around 10^{p}");
        }
        let (got, expected) = lines(0..1234);
        assert_eq!(got, expected);
    }

    #[test]
    fn after_a_push_the_next_number_is_ready_without_formatting() {
        let mut lines = SeqLines::default();
        let mut out = Vec::new();
        for (n, next) in [(7, "8\n"), (8, "9\n"), (9, "10\n"), (1999, "2000\n")] {
            lines.push(&mut out, n);
            assert_eq!(lines.value, n + 1);
            assert_eq!(&lines.text[..=lines.digits], next.as_bytes());
        }
    }

    #[test]
    fn gaps_repeats_and_the_largest_number_print_as_display_does() {
        let numbers = [5, 6, 6, 3, 99, 1000, u64::MAX - 1, u64::MAX, u64::MAX, 0, 7];
        let (got, expected) = lines(numbers);
        assert_eq!(got, expected);
    }
}
