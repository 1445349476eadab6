//! The one place where every domain's errors become an HTTP status and the error envelope
//! ([`ApiError`]). Internal details (SQL errors and the like) are logged here and never sent to
//! the caller; a transient database error stays marked as such, so the writer retries its unit.

use tollgate_shared::ErrorKind;

use crate::domain::auth::model::AuthError;
use crate::domain::catalog::model::CatalogError;
use crate::domain::checkout::model::CheckoutError;
use crate::domain::customers::model::CustomerError;
use crate::domain::portal::model::PortalError;
use crate::domain::subscriptions::model::SubscriptionError;
pub use crate::platform::http::error::{ApiError, ApiResult};

fn internal(context: &str, db: sqlx::Error) -> ApiError {
    if crate::platform::db::is_transient(&db) {
        return ApiError::from(db);
    }
    ApiError::internal(context, &db)
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let kind = match e {
            AuthError::Missing | AuthError::Invalid => ErrorKind::Unauthorized,
            AuthError::WrongKind(_) | AuthError::WrongMode => ErrorKind::Forbidden,
            AuthError::NotFound(_) => ErrorKind::NotFound,
            AuthError::Db(db) => return internal("auth", db),
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let kind = match e {
            CatalogError::Invalid(_) => ErrorKind::BadRequest,
            CatalogError::FeatureNotFound(_)
            | CatalogError::PlanNotFound(_)
            | CatalogError::PriceNotFound(..) => ErrorKind::NotFound,
            CatalogError::Exists(_) => ErrorKind::Conflict,
            CatalogError::Db(db) => return internal("catalog", db),
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<CustomerError> for ApiError {
    fn from(e: CustomerError) -> Self {
        let kind = match e {
            CustomerError::Invalid(_) => ErrorKind::BadRequest,
            CustomerError::NotFound(_) => ErrorKind::NotFound,
            CustomerError::Exists(_) | CustomerError::Archived(_) => ErrorKind::Conflict,
            CustomerError::Db(db) => return internal("customers", db),
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        let kind = match e {
            CheckoutError::Customer(c) => return c.into(),
            CheckoutError::Catalog(c) => return c.into(),
            CheckoutError::Db(db) => return internal("checkout", db),
            CheckoutError::Invalid(_) => ErrorKind::BadRequest,
            CheckoutError::NotFound(_) => ErrorKind::NotFound,
            CheckoutError::AlreadyCompleted(_) => ErrorKind::Conflict,
            CheckoutError::Declined(_) => ErrorKind::PaymentRequired,
            CheckoutError::TestModeOnly => ErrorKind::Forbidden,
            CheckoutError::Unavailable(_) => ErrorKind::Conflict,
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        let kind = match e {
            SubscriptionError::Invalid(_) => ErrorKind::BadRequest,
            SubscriptionError::NotFound(_) => ErrorKind::NotFound,
            SubscriptionError::NotChangeable { .. } => ErrorKind::Conflict,
            SubscriptionError::Payment(_) | SubscriptionError::NoCard(_) => {
                ErrorKind::PaymentRequired
            }
            SubscriptionError::AlreadySubscribed { .. } => ErrorKind::Conflict,
            SubscriptionError::Catalog(c) => return c.into(),
            SubscriptionError::Db(db) => return internal("subscriptions", db),
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<crate::workflows::usage::UsageError> for ApiError {
    fn from(e: crate::workflows::usage::UsageError) -> Self {
        use crate::workflows::usage::UsageError;
        match e {
            UsageError::Invalid(i) => i.into(),
            UsageError::Customer(c) => c.into(),
            UsageError::FeatureNotFound(_) => ApiError::new(ErrorKind::NotFound, e.to_string()),
            UsageError::Db(db) => internal("usage", db),
        }
    }
}

impl From<PortalError> for ApiError {
    fn from(e: PortalError) -> Self {
        let kind = match e {
            PortalError::Customer(c) => return c.into(),
            PortalError::Subscription(s) => return s.into(),
            PortalError::Db(db) => return internal("portal", db),
            PortalError::Invalid(_) => ErrorKind::BadRequest,
            PortalError::UnknownToken | PortalError::NotYours => ErrorKind::NotFound,
            // An expired link is "forbidden" to the API envelope; the hosted page says 410.
            PortalError::Expired | PortalError::Forbidden(_) => ErrorKind::Forbidden,
            PortalError::Stale(_) => ErrorKind::Conflict,
            PortalError::Declined(_) => ErrorKind::PaymentRequired,
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<crate::domain::licenses::model::LicenseError> for ApiError {
    fn from(e: crate::domain::licenses::model::LicenseError) -> Self {
        use crate::domain::licenses::model::LicenseError;
        let kind = match e {
            LicenseError::Invalid(i) => return i.into(),
            LicenseError::Db(db) => return internal("licenses", db),
            LicenseError::NotFound | LicenseError::InstanceNotFound(_) => ErrorKind::NotFound,
            LicenseError::NotUsable(_) | LicenseError::LimitReached { .. } => ErrorKind::Conflict,
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<crate::domain::refunds::model::RefundError> for ApiError {
    fn from(e: crate::domain::refunds::model::RefundError) -> Self {
        use crate::domain::refunds::model::RefundError;
        let kind = match e {
            RefundError::Invalid(i) => return i.into(),
            RefundError::Db(db) => return internal("refunds", db),
            RefundError::OrderNotFound(_) | RefundError::NotFound(_) => ErrorKind::NotFound,
            RefundError::FullyRefunded(_) | RefundError::NotRefundable(_) => ErrorKind::Conflict,
        };
        ApiError::new(kind, e.to_string())
    }
}
