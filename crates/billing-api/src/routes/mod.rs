//! HTTP routes, one module per group, each mounted by `configure`.

pub(crate) mod changes;
pub(crate) mod checkout;
pub(crate) mod entitlements;
pub(crate) mod grants;
pub(crate) mod history;
pub(crate) mod link;
pub(crate) mod operations;
pub(crate) mod portal;
pub(crate) mod webhooks;

use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::http::Method;
use actix_web::{FromRequest, Handler, HttpRequest, HttpResponse, Resource, Responder, web};

use crate::error::ApiError;

/// Mounts every route group.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(crate::admin::configure)
        .configure(changes::configure)
        .configure(checkout::configure)
        .configure(entitlements::configure)
        .configure(grants::configure)
        .configure(history::configure)
        .configure(link::configure)
        .configure(operations::configure)
        .configure(portal::configure)
        .configure(crate::openapi::configure)
        .configure(webhooks::configure);
}

/// Mounts `handler` for `method` at `path`; any other method answers 405
/// with an `Allow` header naming the one the path serves.
pub(crate) fn mount<F, Args>(cfg: &mut web::ServiceConfig, path: &str, method: Method, handler: F)
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let allow = [method.clone()];
    serve(cfg, path, &allow, |resource| {
        resource.route(web::method(method).to(handler))
    });
}

/// Mounts the resource `routes` builds at `path`, serving `methods`; any
/// other method answers 405 with an `Allow` header naming them.
pub(crate) fn serve(
    cfg: &mut web::ServiceConfig,
    path: &str,
    methods: &[Method],
    routes: impl FnOnce(Resource) -> Resource,
) {
    let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
    let allow = allow.join(", ");
    cfg.service(
        routes(web::resource(path)).default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed(allow)) }
        })),
    );
}

/// What a path that no route serves answers.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        code: "not_found",
        message: format!("no route serves {}", req.path()),
    })
}

/// Turns a query string the extractor refused into our error shape.
pub fn query_error(error: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::InvalidRequest(format!("invalid query string: {error}")).into()
}

/// Turns a JSON body the extractor refused into our error shape.
pub fn json_error(error: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let message = match &error {
        JsonPayloadError::Deserialize(e) => format!("invalid JSON body: {e}"),
        JsonPayloadError::ContentType => {
            "the body must be JSON (Content-Type: application/json)".into()
        }
        other => format!("invalid body: {other}"),
    };
    ApiError::InvalidRequest(message).into()
}
