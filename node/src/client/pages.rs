//! Following a listing's pages: a node answers a page and the token of the
//! next (the last key it listed; empty when there is no more), and the
//! client asks again from that token. A hostile or broken node could keep
//! sending tokens for ever, or the same token again: tokens must rise, and
//! at most [`MAX_PAGES`] are followed.

use agora_proto::v1 as pb;

/// Items asked per page when listing, unless told (`--page-size`); the
/// node caps it (200, and 32 for proven pages).
pub const PAGE_LIMIT: u32 = 200;
/// Pages followed at most, so a node that keeps returning tokens cannot
/// keep the client asking for ever.
pub const MAX_PAGES: usize = 1000;

/// A node whose next page token does not come after the last one: it would
/// list the same items again, for ever.
#[derive(Debug, thiserror::Error)]
#[error(
    "the node's next page token ({next}) does not come after the last one ({last}): following it would list the same items again"
)]
pub struct StalledPages {
    last: String,
    next: String,
}

impl From<StalledPages> for tonic::Status {
    fn from(e: StalledPages) -> Self {
        tonic::Status::data_loss(e.to_string())
    }
}

/// Follows page tokens from the first page until `fetch` returns an empty
/// one, asking `limit` items per page, for at most [`MAX_PAGES`] pages:
/// every page's items in order, and whether the node had more after the
/// last page followed. `fetch` answers a page's items and its next token.
pub async fn follow<T, E, F, Fut>(limit: u32, mut fetch: F) -> Result<(Vec<T>, bool), E>
where
    F: FnMut(pb::PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Vec<u8>), E>>,
    E: From<StalledPages>,
{
    let mut all = Vec::new();
    let mut token = Vec::new();
    for _ in 0..MAX_PAGES {
        let (items, next) = fetch(pb::PageRequest {
            page_token: token.clone(),
            limit,
        })
        .await?;
        all.extend(items);
        if next.is_empty() {
            return Ok((all, false));
        }
        // Tokens are keys in the listing's order, so an honest node's rise.
        if next <= token {
            return Err(StalledPages {
                last: hex::encode(&token),
                next: hex::encode(&next),
            }
            .into());
        }
        token = next;
    }
    Ok((all, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node listing `0..n` one item per page, each token the item's byte;
    /// `stall_at` makes it send the same token again from that item on.
    async fn listing(n: u8, stall_at: Option<u8>) -> Result<(Vec<u8>, bool), tonic::Status> {
        follow(1, |page: pb::PageRequest| async move {
            assert_eq!(page.limit, 1);
            let item = page.page_token.first().map_or(0, |t| t + 1);
            let next = match stall_at {
                Some(s) if item >= s => vec![s],
                _ if item + 1 < n => vec![item],
                _ => Vec::new(),
            };
            Ok((vec![item], next))
        })
        .await
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn every_page_is_followed_in_order() {
        let (items, more) = run(listing(5, None)).unwrap();
        assert_eq!(items, vec![0, 1, 2, 3, 4]);
        assert!(!more);
    }

    #[test]
    fn a_token_that_does_not_rise_is_refused() {
        let err = run(listing(50, Some(3))).unwrap_err();
        assert_eq!(err.code(), tonic::Code::DataLoss);
        assert!(err.message().contains("does not come after"), "{err}");
    }

    #[test]
    fn a_node_that_never_stops_is_followed_for_max_pages_only() {
        let mut asked = 0;
        let (items, more) = run(follow(7, |page: pb::PageRequest| {
            asked += 1;
            // Tokens rise for ever: the page number, big-endian.
            let next = (asked as u64).to_be_bytes().to_vec();
            assert!(next.as_slice() > page.page_token.as_slice());
            async move { Ok::<_, tonic::Status>((vec![()], next)) }
        }))
        .unwrap();
        assert!(more);
        assert_eq!(items.len(), MAX_PAGES);
        assert_eq!(asked, MAX_PAGES);
    }
}
