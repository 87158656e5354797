//! The storage conformance suite against PostgreSQL: one throwaway cluster for this test
//! binary (`storage_postgres::testing`), a fresh database per check. Skipped, loudly, where
//! the PostgreSQL binaries are missing.

use ca::storage::conformance::Fixture;
use storage_postgres::testing;
use storage_postgres::PgStorage;

fn fresh() -> Option<Fixture<PgStorage>> {
    let cluster = testing::shared()?;
    let url = cluster
        .database()
        .unwrap_or_else(|e| panic!("create a test database: {e}"));
    let store = PgStorage::open(&url).unwrap_or_else(|e| panic!("open {url}: {e}"));
    Some(Fixture::new(store))
}

ca::storage_conformance!(fresh);
