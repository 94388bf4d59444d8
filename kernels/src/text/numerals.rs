//! Digits written as other characters. NFKC already folds full-width digits
//! (１) and circled digits (①) to ASCII; this module covers what NFKC leaves:
//! dingbat circled digits (❶ ➀ ➊), Chinese financial numerals (壹贰叁) and
//! plain Chinese numerals (一二三) inside long numeral runs. No crate covers
//! this mix, hence the small tables.

/// A digit that NFKC does not fold but that a reader sees as a digit; these
/// characters are numerals wherever they appear.
pub fn always_digit(c: char) -> Option<char> {
    let d = match c as u32 {
        0x2776..=0x277E => (c as u32 - 0x2776 + 1) as u8, // ❶..❾
        0x2780..=0x2788 => (c as u32 - 0x2780 + 1) as u8, // ➀..➈
        0x278A..=0x2792 => (c as u32 - 0x278A + 1) as u8, // ➊..➒
        0x24F5..=0x24FD => (c as u32 - 0x24F5 + 1) as u8, // ⓵..⓽
        0x24FF | 0x24EA => 0,                             // ⓿ ⓪
        _ => {
            return match c {
                '壹' => Some('1'),
                '贰' | '貳' => Some('2'),
                '叁' | '參' => Some('3'),
                '肆' => Some('4'),
                '伍' => Some('5'),
                '陆' | '陸' => Some('6'),
                '柒' => Some('7'),
                '捌' => Some('8'),
                '玖' => Some('9'),
                _ => None,
            }
        }
    };
    char::from_digit(d as u32, 10)
}

/// A plain Chinese numeral. These are ordinary word characters too (三星 is
/// Samsung, 一次性 is "disposable"), so they are read as digits only inside a
/// run of at least [`MIN_NUMERAL_RUN`] numerals and digits, the shape of a
/// phone number or account id spelled out to dodge filters.
pub fn run_digit(c: char) -> Option<char> {
    Some(match c {
        '〇' | '零' | '洞' => '0',
        '一' | '幺' | '么' => '1',
        '二' | '两' => '2',
        '三' => '3',
        '四' => '4',
        '五' => '5',
        '六' => '6',
        '七' | '拐' => '7',
        '八' => '8',
        '九' | '勾' => '9',
        _ => return None,
    })
}

pub const MIN_NUMERAL_RUN: usize = 4;

/// Rewrite runs of Chinese numerals mixed with ASCII digits to digits, in place.
/// A run qualifies when it has at least `MIN_NUMERAL_RUN` characters and at
/// least two Chinese numerals or ASCII digits that are not colloquial stand-ins
/// (洞/拐/勾/幺/么 alone never make a run).
pub fn fold_numeral_runs(chars: &mut [char]) {
    let strong = |c: char| {
        c.is_ascii_digit()
            || matches!(
                c,
                '〇' | '零' | '一' | '二' | '两' | '三' | '四' | '五' | '六' | '七' | '八' | '九'
            )
    };
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() || run_digit(chars[i]).is_some() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || run_digit(chars[i]).is_some()) {
                i += 1;
            }
            let run = &mut chars[start..i];
            let has_chinese = run.iter().any(|c| !c.is_ascii_digit());
            let n_strong = run.iter().filter(|c| strong(**c)).count();
            if has_chinese && run.len() >= MIN_NUMERAL_RUN && n_strong >= 2 {
                for c in run.iter_mut() {
                    if let Some(d) = run_digit(*c) {
                        *c = d;
                    }
                }
            }
        } else {
            i += 1;
        }
    }
}
