//! Mounting a handler at a path, with the 405 every other method gets.

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, web};

use crate::http::error::ApiError;

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
