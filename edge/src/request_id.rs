//! The request's `x-request-id`: the client's when `shared::request_id` accepts it, else a
//! fresh one from 128 bits of `crypto.getRandomValues` (the Workers runtime's Web Crypto).
//! It is forwarded on every request to the origin and set on every response.

use shared::request_id::{accept, format};
use wasm_bindgen::{JsCast, JsValue};
use worker::Request;
use worker::js_sys::{self, Function, Reflect, Uint8Array};

/// The id of `req`.
pub fn of(req: &Request) -> String {
    let given = req.headers().get(shared::request_id::HEADER).ok().flatten();
    match accept(given.as_deref()) {
        Some(id) => id.to_owned(),
        None => format(random_u128()),
    }
}

/// 128 random bits. `crypto.getRandomValues` is always there in workerd; should it ever fail,
/// `Math.random` still gives an id unique enough to follow a request (it need not be secret).
pub(crate) fn random_u128() -> u128 {
    crypto_random().unwrap_or_else(|_| {
        let half = || (js_sys::Math::random() * 2f64.powi(53)) as u128;
        (half() << 64) | half()
    })
}

fn crypto_random() -> Result<u128, JsValue> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into())?;
    let get_random_values: Function =
        Reflect::get(&crypto, &"getRandomValues".into())?.dyn_into()?;
    let bytes = Uint8Array::new_with_length(16);
    get_random_values.call1(&crypto, &bytes)?;
    let mut buffer = [0u8; 16];
    bytes.copy_to(&mut buffer);
    Ok(u128::from_le_bytes(buffer))
}
