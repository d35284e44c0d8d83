//! Property tests of every parser in `shared`: none panics on any input (unicode, control
//! characters, very long strings, header-like punctuation), and each round-trips where it has
//! a format of its own (a formatted value parses back to the same value, a key to itself).
//!
//! Run with `cargo test -p shared --test properties`.

use proptest::prelude::*;
use shared::cache_status::{CacheStatus, Forward, client_side_hit};
use shared::cors::{CorsPolicy, vary_for_storage, vary_with_origin};
use shared::directives::{CacheDirectives, DELTA_SECONDS_MAX, DeltaSeconds, parse_delta_seconds};
use shared::edge_key::EdgeRoute;
use shared::etag::{if_none_match_matches, strong_etag};
use shared::params::{Limit, MovieId, Rating, Strategy as RecStrategy, UserId};
use shared::purge::{PurgeError, PurgeRequest};
use shared::request_id;

/// Any input a client or an upstream could send: arbitrary unicode (control characters
/// included), text made of the punctuation the parsers split on, and very long strings.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        3 => "[a-zA-Z0-9=,;:\"\\\\ \t*/%?&.+_'-]{0,80}",
        3 => "[\\x00-\\x7f\u{e9}\u{ff}\u{fffd}\u{1f600}]{0,80}",
        1 => prop::collection::vec(any::<char>(), 500..3000).prop_map(String::from_iter),
    ]
}

/// Splits `path?query` the way a URL does (and as the purge endpoint does).
fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (key, None),
    }
}

// ---------------------------------------------------------------- directives.rs

/// A well-formed `Cache-Control` value and what it must parse to: each directive once, in any
/// order, names in any ASCII case, with optional whitespace.
fn cache_control() -> impl Strategy<Value = (String, CacheDirectives)> {
    let delta = prop::option::of(0..=DELTA_SECONDS_MAX);
    let fields = prop::option::of(prop::collection::btree_set("[a-z][a-z0-9-]{0,8}", 0..4));
    (
        (delta.clone(), delta.clone(), delta.clone(), delta),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        (fields.clone(), fields),
        any::<bool>(),
    )
        .prop_flat_map(
            |(
                (max_age, s_maxage, swr, sie),
                (public, no_store, must, proxy),
                (private, no_cache),
                upper,
            )| {
                let mut parts = Vec::new();
                let mut delta = |name: &str, value: Option<u32>, quoted: bool| {
                    if let Some(v) = value {
                        parts.push(if quoted {
                            format!("{name}=\"{v}\"")
                        } else {
                            format!("{name}={v}")
                        });
                    }
                };
                delta("max-age", max_age, false);
                delta("s-maxage", s_maxage, true);
                delta("stale-while-revalidate", swr, false);
                delta("stale-if-error", sie, true);
                for (on, name) in [
                    (public, "public"),
                    (no_store, "no-store"),
                    (must, "must-revalidate"),
                    (proxy, "proxy-revalidate"),
                ] {
                    if on {
                        parts.push(name.to_owned());
                    }
                }
                for (name, list) in [("private", &private), ("no-cache", &no_cache)] {
                    match list {
                        Some(list) if !list.is_empty() => {
                            let list = list.iter().cloned().collect::<Vec<_>>().join(", ");
                            parts.push(format!("{name}=\"{list}\""));
                        }
                        Some(_) => parts.push(name.to_owned()),
                        None => {}
                    }
                }
                if upper {
                    parts = parts.into_iter().map(|p| p.to_ascii_uppercase()).collect();
                }
                let valid = |v: Option<u32>| v.map(DeltaSeconds::Valid);
                let fields = |list: &Option<std::collections::BTreeSet<String>>| {
                    list.iter().flatten().cloned().collect::<Vec<_>>()
                };
                let expected = CacheDirectives {
                    max_age: valid(max_age),
                    s_maxage: valid(s_maxage),
                    public,
                    private: private.is_some(),
                    private_fields: fields(&private),
                    no_store,
                    no_cache: no_cache.is_some(),
                    no_cache_fields: fields(&no_cache),
                    must_revalidate: must,
                    proxy_revalidate: proxy,
                    stale_while_revalidate: valid(swr),
                    stale_if_error: valid(sie),
                };
                let separators = prop::collection::vec(
                    prop::sample::select(vec![",", ", ", " ,\t", ",,", "\t, "]),
                    parts.len(),
                );
                (Just(parts).prop_shuffle(), separators, Just(expected))
            },
        )
        .prop_map(|(parts, separators, expected)| {
            let mut header = String::new();
            for (part, sep) in parts.iter().zip(separators) {
                header.push_str(part);
                header.push_str(sep);
            }
            (header, expected)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn directives_never_panic_and_ignore_ascii_case(header in text()) {
        let parsed = CacheDirectives::parse(&header);
        // Directive names are tokens "compared case-insensitively" (RFC 9111 5.2), field
        // names are lower-cased and delta-seconds are digits: case never changes a reading.
        prop_assert_eq!(&CacheDirectives::parse(&header.to_ascii_uppercase()), &parsed);
        let _ = (parsed.stale_while_revalidate_secs(), parsed.stale_if_error_secs());
        prop_assert!(parsed.freshness_lifetime_shared().is_none_or(|s| s <= DELTA_SECONDS_MAX));
    }

    #[test]
    fn directives_round_trip((header, expected) in cache_control()) {
        prop_assert_eq!(CacheDirectives::parse(&header), expected);
    }

    #[test]
    fn repeated_lifetime_is_invalid(a in 0..=DELTA_SECONDS_MAX, b in 0..=DELTA_SECONDS_MAX) {
        let parsed = CacheDirectives::parse(&format!("max-age={a}, public, max-age={b}"));
        prop_assert_eq!(parsed.max_age, Some(DeltaSeconds::Invalid));
        prop_assert_eq!(parsed.freshness_lifetime_shared(), Some(0));
    }

    #[test]
    fn delta_seconds_saturate(n in any::<u64>(), zeros in 0usize..30) {
        let raw = format!("{}{n}", "0".repeat(zeros));
        let want = u32::try_from(n.min(u64::from(DELTA_SECONDS_MAX))).unwrap();
        prop_assert_eq!(parse_delta_seconds(&raw), Some(want));
    }

    #[test]
    fn delta_seconds_only_digits(raw in text()) {
        let parsed = parse_delta_seconds(&raw);
        let digits = !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit());
        prop_assert_eq!(parsed.is_some(), digits);
        prop_assert!(parsed.is_none_or(|s| s <= DELTA_SECONDS_MAX));
    }
}

// ---------------------------------------------------------------- edge_key.rs, purge.rs

/// Paths near the edge's routes (so that many are accepted), and arbitrary ones.
fn edge_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        text(),
        "[0-9]{1,12}",
        "(%[0-9a-fA-F]{2}|[a-zA-Z0-9'._~+ -]|%|%2[eE]){1,12}",
        Just("popular".to_owned()),
        Just("%70opular".to_owned()),
    ];
    prop_oneof![
        text(),
        segment.clone().prop_map(|s| format!("/movies/{s}")),
        segment.prop_map(|s| format!("/genres/{s}/top")),
        Just("/movies/popular".to_owned()),
        Just("/genres".to_owned()),
    ]
}

fn edge_query() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        text(),
        "(limit|li%6Dit|utm|x)=(0{0,3}[0-9]{1,3}|%3[0-9]|[a-z+%&=]{0,4})(&[a-z]{1,5}=[0-9a-z]{0,3}){0,2}",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn edge_keys_are_fixed_points(path in edge_path(), query in edge_query()) {
        // Never panics; an accepted request's key is canonical: it parses to itself, with the
        // same route (normalisation is idempotent).
        if let Ok(route) = EdgeRoute::parse(&path, query.as_deref()) {
            let (key_path, key_query) = split_key(&route.key);
            let again = EdgeRoute::parse(key_path, key_query);
            prop_assert_eq!(again.as_ref(), Ok(&route), "{:?}?{:?}", path, query);
        }
    }

    #[test]
    fn edge_accepts_every_valid_movie_and_limit(
        id in 1..=i32::MAX,
        zeros in 0usize..3,
        limit in 1..=Limit::MAX,
    ) {
        // Leading zeros are read as the origin reads them, within its 10-character limit.
        let raw = format!("{}{id}", "0".repeat(zeros));
        let raw = if raw.len() <= 10 { raw } else { id.to_string() };
        let route = EdgeRoute::parse(&format!("/movies/{raw}"), None);
        prop_assert_eq!(route.map(|r| r.key), Ok(format!("/movies/{id}")));
        let query = format!("utm=x&limit={limit}");
        let route = EdgeRoute::parse("/movies/popular", Some(&query));
        prop_assert_eq!(route.map(|r| r.key), Ok(format!("/movies/popular?limit={limit}")));
    }

}

proptest! {
    // Up to 60 paths per case: fewer cases keep this to about a second.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn purge_keys_are_canonical(paths in prop::collection::vec(
        prop_oneof![
            text(),
            (edge_path(), edge_query()).prop_map(|(p, q)| match q {
                Some(q) => format!("{p}?{q}"),
                None => p,
            }),
        ],
        0..60,
    )) {
        let request = PurgeRequest { paths: paths.clone(), ..PurgeRequest::default() };
        match request.keys() {
            Ok(keys) => {
                prop_assert!(!keys.is_empty() && keys.len() <= paths.len());
                for (i, key) in keys.iter().enumerate() {
                    prop_assert!(!keys[..i].contains(key), "duplicate {}", key);
                    let (p, q) = split_key(key);
                    prop_assert_eq!(EdgeRoute::parse(p, q).map(|r| r.key), Ok(key.clone()));
                }
                // Purging the keys themselves purges the same keys.
                prop_assert_eq!(PurgeRequest { paths: keys.clone(), ..PurgeRequest::default() }.keys(), Ok(keys));
            }
            Err(PurgeError::Empty) => prop_assert!(paths.is_empty()),
            Err(PurgeError::TooMany { got, max }) => prop_assert!(got == paths.len() && got > max),
            Err(PurgeError::NotCacheable(p) | PurgeError::Invalid { path: p, .. }) => {
                prop_assert!(paths.contains(&p));
                let (route_path, query) = split_key(&p);
                prop_assert!(EdgeRoute::parse(route_path, query).is_err());
            }
            Err(err @ (PurgeError::InvalidTag(_) | PurgeError::TooManyTags(_))) => {
                prop_assert!(false, "no tags were given: {err}");
            }
        }
    }
}

// ---------------------------------------------------------------- params.rs

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ids_never_panic(raw in text()) {
        let movie = MovieId::parse(&raw);
        prop_assert_eq!(movie.clone().map(|m| m.0), UserId::parse(&raw).map(|u| u.0));
        if let Ok(MovieId(id)) = movie {
            prop_assert!(id > 0);
            prop_assert_eq!(raw.trim_start_matches('0'), id.to_string());
        } else {
            prop_assert_eq!(movie.unwrap_err().code(), "invalid_id");
        }
    }

    #[test]
    fn ids_round_trip(id in 1..=i32::MAX) {
        prop_assert_eq!(MovieId::parse(&id.to_string()), Ok(MovieId(id)));
        prop_assert_eq!(UserId::parse(&id.to_string()), Ok(UserId(id)));
    }

    #[test]
    fn non_positive_ids_are_refused(id in i32::MIN..=0) {
        prop_assert!(MovieId::parse(&id.to_string()).is_err());
    }

    #[test]
    fn limits_never_panic(raw in prop::option::of(text())) {
        match Limit::parse("limit", raw.as_deref(), Limit::DEFAULT) {
            Ok(limit) => {
                prop_assert!((1..=Limit::MAX).contains(&limit.get()));
                if raw.is_none() {
                    prop_assert_eq!(limit, Limit::DEFAULT);
                }
            }
            Err(err) => prop_assert_eq!(err.code(), "invalid_limit"),
        }
    }

    #[test]
    fn limits_round_trip(n in 1..=Limit::MAX, zeros in 0usize..2) {
        let limit = Limit::parse("n", Some(&n.to_string()), Limit::DEFAULT_N).unwrap();
        prop_assert_eq!(limit.get(), n);
        // Parsed from its own formatted value, it is the same.
        let formatted = limit.get().to_string();
        prop_assert_eq!(Limit::parse("n", Some(&formatted), Limit::DEFAULT_N), Ok(limit));
        if n < 10 {
            let padded = format!("{}{n}", "0".repeat(zeros + 1));
            prop_assert_eq!(Limit::parse("n", Some(&padded), Limit::DEFAULT_N), Ok(limit));
        }
    }

    #[test]
    fn out_of_range_limits_are_refused(n in prop_oneof![Just(0u64), 101..u64::MAX]) {
        prop_assert!(Limit::parse("limit", Some(&n.to_string()), Limit::DEFAULT).is_err());
    }

    #[test]
    fn ratings_never_panic(value in any::<f64>()) {
        if let Ok(rating) = Rating::parse(value) {
            let v = f64::from(rating.get());
            prop_assert!((0.5..=5.0).contains(&v) && (v * 2.0).fract() == 0.0);
            prop_assert_eq!(v, value);
        }
    }

    #[test]
    fn ratings_round_trip(halves in 1u32..=10) {
        let value = f64::from(halves) / 2.0;
        let rating = Rating::parse(value).unwrap();
        prop_assert_eq!(f64::from(rating.get()), value);
        prop_assert_eq!(Rating::parse(f64::from(rating.get())), Ok(rating));
        prop_assert!(Rating::parse(value + 0.25).is_err());
    }

    #[test]
    fn strategies_parse(raw in prop::option::of(text())) {
        match RecStrategy::parse(raw.as_deref()) {
            Ok(strategy) => match raw {
                Some(raw) => prop_assert_eq!(strategy.as_str(), raw),
                None => prop_assert_eq!(strategy, RecStrategy::Hybrid),
            },
            Err(err) => {
                prop_assert_eq!(err.code(), "invalid_strategy");
                let raw = raw.unwrap();
                prop_assert!(RecStrategy::ALL.iter().all(|s| s.as_str() != raw));
            }
        }
    }

    #[test]
    fn strategies_round_trip(strategy in prop::sample::select(RecStrategy::ALL.to_vec())) {
        prop_assert_eq!(RecStrategy::parse(Some(strategy.as_str())), Ok(strategy));
    }
}

// ---------------------------------------------------------------- etag.rs

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn if_none_match_never_panics(header in text(), etag in text()) {
        let _ = if_none_match_matches(&header, &etag);
    }

    #[test]
    fn if_none_match_finds_its_tag(
        body in prop::collection::vec(any::<u8>(), 0..256),
        others in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..5),
        at in any::<prop::sample::Index>(),
        weak in any::<bool>(),
        pad in "[ \t]{0,2}",
    ) {
        let etag = strong_etag(&body);
        prop_assert_eq!(etag.len(), 34);
        prop_assert!(etag.starts_with('"') && etag.ends_with('"'));
        let mut tags: Vec<String> = others
            .iter()
            .filter(|other| **other != body)
            .map(|other| strong_etag(other))
            .collect();
        // Weak comparison: a tag that differs (by body) never matches.
        prop_assert!(!if_none_match_matches(&tags.join(", "), &etag));
        let mine = if weak { format!("W/{etag}") } else { etag.clone() };
        tags.insert(at.index(tags.len() + 1), format!("{pad}{mine}{pad}"));
        prop_assert!(if_none_match_matches(&tags.join(","), &etag));
        // `*` matches any current representation.
        let with_star = format!("{}, *", tags.join(","));
        prop_assert!(if_none_match_matches(&with_star, &etag));
    }
}

// ---------------------------------------------------------------- cache_status.rs

fn cache_status() -> impl Strategy<Value = CacheStatus> {
    (
        prop::sample::select(vec!["origin", "edge", "cdn", "hit"]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec![
            Forward::Bypass,
            Forward::Method,
            Forward::Miss,
            Forward::Stale,
        ])),
        (any::<bool>(), any::<bool>()),
        prop::option::of(any::<i64>()),
        prop::option::of(prop::sample::select(vec![
            "stale",
            "cache-unavailable",
            // An RFC 8941 String: its comma and `; hit` split nothing.
            "\"a, b; hit\"",
            "\"q\\\"; hit, \\\\\"",
        ])),
    )
        .prop_map(
            |(cache, hit, fwd, (stored, collapsed), ttl, detail)| CacheStatus {
                cache,
                hit,
                fwd,
                stored,
                collapsed,
                ttl,
                detail,
            },
        )
}

/// What a hop nearer the origin may have sent: members it formatted, or any text without
/// quotes (a lone `"` would open a string that swallows what follows it).
fn upstream() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        prop::collection::vec(cache_status(), 0..3).prop_map(|members| {
            members
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }),
        "[^\"]{0,60}",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_side_hit_never_panics(value in text()) {
        let _ = client_side_hit(&value);
    }

    #[test]
    fn formatted_status_reads_back(status in cache_status(), upstream in upstream()) {
        prop_assert_eq!(client_side_hit(&status.to_string()), status.hit, "{}", status);
        let chain = status.append_to(upstream.as_deref());
        prop_assert!(chain.ends_with(&status.to_string()));
        prop_assert_eq!(client_side_hit(&chain), status.hit, "{}", chain);
    }
}

// ---------------------------------------------------------------- cors.rs

/// A serialized origin for the configuration, and one that a browser on it would send.
fn origin() -> impl Strategy<Value = (String, String)> {
    (
        "[a-zA-Z][a-zA-Z0-9+.-]{0,6}",
        prop_oneof![
            "[a-zA-Z0-9-]{1,10}(\\.[a-zA-Z0-9-]{1,10}){0,3}",
            "\\[[0-9a-f:]{2,12}\\]"
        ],
        prop_oneof![
            Just(String::new()),
            Just(":*".to_owned()),
            any::<u16>().prop_map(|p| format!(":{p}")),
        ],
        any::<u16>(),
    )
        .prop_map(|(scheme, host, config_port, any_port)| {
            let request_port = match config_port.as_str() {
                ":*" => format!(":{any_port}"),
                p => p.to_owned(),
            };
            (
                format!("{scheme}://{host}{config_port}"),
                format!("{}://{}{request_port}", scheme.to_ascii_lowercase(), host),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cors_never_panics(config in text(), origin in text(), vary in text()) {
        if let Ok(policy) = CorsPolicy::parse(&config) {
            let _ = policy.allows(&origin);
            let _ = policy.actual(Some(&origin));
            let _ = policy.preflight(&origin, &vary);
        }
        let _ = CorsPolicy::default().allows(&origin);
        let _ = vary_for_storage(&vary);
    }

    #[test]
    fn a_policy_allows_its_own_origins(
        origins in prop::collection::vec(origin(), 1..6),
        pad in "[ \t]{0,2}",
    ) {
        let config = origins
            .iter()
            .map(|(entry, _)| format!("{pad}{entry}{pad}"))
            .collect::<Vec<_>>()
            .join(",");
        let policy = CorsPolicy::parse(&config);
        prop_assert!(policy.is_ok(), "{:?}: {:?}", config, policy);
        let policy = policy.unwrap();
        for (_, request) in &origins {
            prop_assert!(policy.allows(request), "{} under {}", request, config);
            // Browsers serialize origins in lower case; either case is the same origin.
            prop_assert!(policy.allows(&request.to_ascii_uppercase()));
            prop_assert_eq!(policy.actual(Some(request)).len(), 2);
        }
        prop_assert!(!policy.allows("null"));
        prop_assert!(CorsPolicy::parse("*").unwrap().allows(&origins[0].1));
    }

    #[test]
    fn vary_with_origin_is_idempotent(vary in prop::option::of(prop_oneof![
        text(),
        "(accept|Origin|origin|\\*|accept-encoding|access-control-request-method| |\t|,){0,6}",
    ])) {
        let once = vary_with_origin(vary.as_deref());
        prop_assert_eq!(&vary_with_origin(Some(&once)), &once);
        prop_assert!(once
            .split(", ")
            .any(|m| m.eq_ignore_ascii_case("origin") || m == "*"));
        // What is stored does not vary by the CORS members, whether or not `origin` was added.
        let stored = vary_for_storage(&once);
        prop_assert_eq!(&stored, &vary_for_storage(vary.as_deref().unwrap_or_default()));
        if let Some(stored) = stored {
            prop_assert_eq!(vary_for_storage(&stored), Some(stored.clone()));
            prop_assert!(!stored.split(", ").any(|m| m.eq_ignore_ascii_case("origin")));
        }
    }
}

// ---------------------------------------------------------------- request_id.rs

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_ids_never_panic(value in text()) {
        let well_formed = request_id::is_well_formed(&value);
        prop_assert_eq!(request_id::accept(Some(&value)), well_formed.then_some(value.as_str()));
        if well_formed {
            prop_assert!(value.is_ascii() && (1..=request_id::MAX_LEN).contains(&value.len()));
        }
    }

    #[test]
    fn ids_of_allowed_characters_are_kept(value in "[a-zA-Z0-9_.:/+=-]{1,128}") {
        prop_assert_eq!(request_id::accept(Some(&value)), Some(value.as_str()));
        let too_long = value.repeat(request_id::MAX_LEN / value.len() + 1);
        prop_assert!(!request_id::is_well_formed(&too_long));
    }

    #[test]
    fn fresh_ids_are_well_formed(random in any::<u128>()) {
        let id = request_id::format(random);
        prop_assert!(request_id::is_well_formed(&id));
        prop_assert_eq!(request_id::accept(Some(&id)), Some(id.as_str()));
        prop_assert_eq!(id.len(), 32);
        prop_assert_eq!(u128::from_str_radix(&id, 16), Ok(random));
    }
}
