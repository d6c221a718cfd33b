//! A series' points resolved in one step. Resolved field by field, as async-graphql does for
//! objects, each point cost a future and an extension call per field: about 820 per dashboard
//! answer and most of the server's time on a cached one. The schema is the derived
//! `MetricPoint`'s, unchanged.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ScalarType, ServerError, ServerResult, Value,
};

use super::analytics::MetricPoint;

pub struct Points(pub Vec<MetricPoint>);

/// A field a point can answer.
#[derive(Clone, Copy)]
enum Part {
    Bucket,
    Value,
    Group,
    Typename,
}

impl Part {
    fn of(point: &MetricPoint, part: Part) -> Value {
        match part {
            Part::Bucket => ScalarType::to_value(&point.bucket),
            Part::Value => ScalarType::to_value(&point.value),
            Part::Group => point
                .group
                .as_ref()
                .map_or(Value::Null, |g| Value::String(g.clone())),
            Part::Typename => Value::String(MetricPoint::type_name().into_owned()),
        }
    }
}

/// The selection's fields in order, under their response keys, fragments expanded (validation has
/// already checked them against `MetricPoint`, and `@skip`/`@include` are applied before
/// execution).
fn selected(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    out: &mut Vec<(Name, Part)>,
) -> ServerResult<()> {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let f = &field.node;
                let part = match f.name.node.as_str() {
                    "bucket" => Part::Bucket,
                    "value" => Part::Value,
                    "group" => Part::Group,
                    "__typename" => Part::Typename,
                    other => {
                        return Err(ServerError::new(
                            format!("unknown field \"{other}\" on MetricPoint"),
                            Some(field.pos),
                        ));
                    }
                };
                let key = f.alias.as_ref().unwrap_or(&f.name).node.clone();
                out.push((key, part));
            }
            Selection::InlineFragment(fragment) => {
                selected(ctx, &fragment.node.selection_set.node, out)?;
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = ctx.query_env.fragments.get(&spread.node.fragment_name.node)
                {
                    selected(ctx, &fragment.node.selection_set.node, out)?;
                }
            }
        }
    }
    Ok(())
}

impl OutputType for Points {
    fn type_name() -> Cow<'static, str> {
        Vec::<MetricPoint>::type_name()
    }

    fn qualified_type_name() -> String {
        Vec::<MetricPoint>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Vec::<MetricPoint>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let mut parts = Vec::new();
        selected(ctx, &ctx.item.node, &mut parts)?;
        Ok(Value::List(
            self.0
                .iter()
                .map(|point| {
                    let mut object = IndexMap::with_capacity(parts.len());
                    for (key, part) in &parts {
                        object.insert(key.clone(), Part::of(point, *part));
                    }
                    Value::Object(object)
                })
                .collect(),
        ))
    }
}
