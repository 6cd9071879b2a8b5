//! The store's PostgreSQL tests: a throw-away database on the server that
//! `HOTLINE_TEST_POSTGRES_URL` names (`make test` starts Debian's cluster and sets it).

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database of its own, dropped with this.
pub struct FreshPostgres {
    pub url: String,
    admin: String,
    name: String,
}

fn admin_url() -> String {
    std::env::var("HOTLINE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "HOTLINE_TEST_POSTGRES_URL is not set: the PostgreSQL tests need a server \
             (`make postgres` starts one; `make test` sets the variable)"
        )
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

impl FreshPostgres {
    pub fn new() -> Self {
        let admin = admin_url();
        let name = format!(
            "hotline_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        runtime().block_on(async {
            let mut c = sqlx::postgres::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("connect to {admin}: {e}"));
            c.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create a test database");
        });
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        runtime().block_on(async {
            if let Ok(mut c) = sqlx::postgres::PgConnection::connect(&admin).await {
                let _ = c
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await;
            }
        });
    }
}
