//! How a target that decodes several messages splits its input: each part
//! but the last behind a 2-byte big-endian length, the last taking the
//! rest (the same layout the mutation run's length changes aim at).

/// The first part of `data` (its 2-byte length, then that many bytes) and
/// the rest; None when `data` is shorter than it says.
pub fn split_part(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    rest.split_at_checked(usize::from(u16::from_be_bytes(*len)))
}

/// An input of `parts`, each behind its length, then `last`.
pub fn join_parts(parts: &[Vec<u8>], last: Vec<u8>) -> Vec<u8> {
    let mut input = Vec::new();
    for part in parts {
        let len = u16::try_from(part.len()).unwrap_or_else(|_| panic!("a part over 64 KiB"));
        input.extend(len.to_be_bytes());
        input.extend(part);
    }
    input.extend(last);
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_as_they_were_joined() {
        let input = join_parts(&[vec![1, 2, 3], vec![]], vec![9, 9]);
        let (a, rest) = split_part(&input).unwrap();
        let (b, last) = split_part(rest).unwrap();
        assert_eq!((a, b, last), (&[1, 2, 3][..], &[][..], &[9, 9][..]));
        assert_eq!(split_part(&[0, 5, 1]), None, "shorter than it says");
    }
}
