//! Lists of small objects resolved in one step: a series' points, a range's MRR movements.
//! Resolved field by field, as async-graphql does for objects, each item cost a future and an
//! extension call per field: about 820 per dashboard answer for points alone, and most of the
//! server's time on a cached one. The schema is the item type's derived one, unchanged.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ServerError, ServerResult, Value,
};

/// An object whose fields are plain values, answered without resolvers.
pub trait Flat: OutputType {
    /// The position of field `name` among the type's fields, for `value`.
    fn field(name: &str) -> Option<usize>;
    fn value(&self, field: usize) -> Value;
}

pub struct FlatList<T>(pub Vec<T>);

/// A selected field: one of the type's, or `__typename`.
#[derive(Clone, Copy)]
enum Part {
    Field(usize),
    Typename,
}

/// The selection's fields in order, under their response keys, fragments expanded (validation has
/// already checked them against the type, and `@skip`/`@include` are applied before execution).
fn selected<T: Flat>(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    out: &mut Vec<(Name, Part)>,
) -> ServerResult<()> {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let f = &field.node;
                let part = match f.name.node.as_str() {
                    "__typename" => Part::Typename,
                    name => T::field(name).map(Part::Field).ok_or_else(|| {
                        ServerError::new(
                            format!("unknown field \"{name}\" on {}", T::type_name()),
                            Some(field.pos),
                        )
                    })?,
                };
                let key = f.alias.as_ref().unwrap_or(&f.name).node.clone();
                out.push((key, part));
            }
            Selection::InlineFragment(fragment) => {
                selected::<T>(ctx, &fragment.node.selection_set.node, out)?;
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = ctx.query_env.fragments.get(&spread.node.fragment_name.node)
                {
                    selected::<T>(ctx, &fragment.node.selection_set.node, out)?;
                }
            }
        }
    }
    Ok(())
}

impl<T: Flat + Send + Sync> OutputType for FlatList<T> {
    fn type_name() -> Cow<'static, str> {
        Vec::<T>::type_name()
    }

    fn qualified_type_name() -> String {
        Vec::<T>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Vec::<T>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let mut parts = Vec::new();
        selected::<T>(ctx, &ctx.item.node, &mut parts)?;
        let typename = Value::String(T::type_name().into_owned());
        Ok(Value::List(
            self.0
                .iter()
                .map(|item| {
                    let mut object = IndexMap::with_capacity(parts.len());
                    for (key, part) in &parts {
                        let value = match part {
                            Part::Field(i) => item.value(*i),
                            Part::Typename => typename.clone(),
                        };
                        object.insert(key.clone(), value);
                    }
                    Value::Object(object)
                })
                .collect(),
        ))
    }
}
