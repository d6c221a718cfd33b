//! Statements written as text whose parameters are numbered as their values are bound: each
//! `bind` returns the placeholder of the value it bound, so a placeholder cannot point at the
//! wrong value, and only values the text uses are bound.

use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;

pub struct Binds<'a> {
    query: BoxedSqlQuery<'a, Pg, SqlQuery>,
    count: usize,
}

impl Default for Binds<'_> {
    fn default() -> Self {
        Binds {
            query: diesel::sql_query("").into_boxed(),
            count: 0,
        }
    }
}

impl<'a> Binds<'a> {
    /// For a statement whose plan is wanted instead of its rows when `explain` (tests that keep
    /// dashboards off the raw events read the plans).
    pub fn explaining(explain: bool) -> Self {
        let mut binds = Binds::default();
        if explain {
            binds.query = binds.query.sql("EXPLAIN (FORMAT JSON) ");
        }
        binds
    }

    /// Binds `value` as the next parameter; returns its placeholder (`$n`) for the text.
    pub fn bind<T, V>(&mut self, value: V) -> String
    where
        Pg: HasSqlType<T>,
        V: ToSql<T, Pg> + Send + 'a,
        T: Send + 'a,
    {
        let query = std::mem::replace(&mut self.query, diesel::sql_query("").into_boxed());
        self.query = query.bind::<T, V>(value);
        self.count += 1;
        format!("${}", self.count)
    }

    /// The statement: `sql`, written with the placeholders `bind` returned.
    pub fn finish(self, sql: &str) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
        self.query.sql(sql)
    }
}

#[cfg(test)]
mod tests {
    use diesel::pg::Pg;
    use diesel::sql_types::{Integer, Text};

    use super::Binds;

    #[test]
    fn placeholders_follow_the_binds() {
        let mut b = Binds::default();
        let n = b.bind::<Integer, _>(7);
        let t = b.bind::<Text, _>("x");
        assert_eq!((n.as_str(), t.as_str()), ("$1", "$2"));
        let sql = format!("SELECT {t} || {n}::text");
        let text = diesel::debug_query::<Pg, _>(&b.finish(&sql)).to_string();
        assert!(text.starts_with("SELECT $2 || $1::text"), "{text}");
        assert!(text.contains("binds: [7, \"x\"]"), "{text}");
    }

    #[test]
    fn an_explained_statement_is_prefixed_once() {
        let mut b = Binds::explaining(true);
        let n = b.bind::<Integer, _>(1);
        let text = diesel::debug_query::<Pg, _>(&b.finish(&format!("SELECT {n}"))).to_string();
        assert!(
            text.starts_with("EXPLAIN (FORMAT JSON) SELECT $1"),
            "{text}"
        );
        let text =
            diesel::debug_query::<Pg, _>(&Binds::explaining(false).finish("SELECT 1")).to_string();
        assert!(text.starts_with("SELECT 1"), "{text}");
    }
}
