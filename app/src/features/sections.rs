//! The rules of the "AI-native features" tab as pure functions of the catalog, the models and
//! the stored assignments: which sections and rows show, which models each dropdown offers,
//! and which model really serves a feature (its own, or the one it falls back to). No database
//! here, so each rule is tested on its own.

use std::collections::HashMap;

use super::domain::{ApplyToAll, Assignment, FeatureRow, FeatureStatus, ModelChoice, SectionView};
use crate::catalog::{Catalog, Feature, Release};
use crate::models::domain::Serving;
use crate::models::store::ModelSummary;

/// Every feature's stored assignment, by feature key; a feature without one is unassigned.
pub type Assignments = HashMap<String, Assignment>;

/// Whether each model serves, by model id; a model missing here has not been tested.
pub type ServingByModel = HashMap<i64, Serving>;

/// The model that answers for a feature now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effective<'a> {
    /// The feature's own model.
    Own { id: i64, name: &'a str },
    /// The model of the feature this one falls back to while it has none of its own.
    Borrowed { id: i64, name: &'a str, from: &'a Feature },
    /// Disabled, or unassigned with nothing to fall back to.
    Nothing,
}

impl Effective<'_> {
    pub fn model_id(&self) -> Option<i64> {
        match self {
            Effective::Own { id, .. } | Effective::Borrowed { id, .. } => Some(*id),
            Effective::Nothing => None,
        }
    }
}

fn assignment_of<'a>(assignments: &'a Assignments, key: &str) -> &'a Assignment {
    assignments.get(key).unwrap_or(&Assignment::Unassigned)
}

/// The one fallback rule: a feature's own model; else, only while it is unassigned (disabled
/// means off), the model of the feature it falls back to.
pub fn effective_model<'a>(
    catalog: &'a Catalog,
    feature: &Feature,
    assignments: &'a Assignments,
) -> Effective<'a> {
    match assignment_of(assignments, &feature.key) {
        Assignment::SelfHosted { id, name } => Effective::Own { id: *id, name },
        Assignment::Disabled => Effective::Nothing,
        Assignment::Unassigned => {
            let Some(from) = feature.falls_back_to.as_deref().and_then(|key| catalog.feature(key)) else {
                return Effective::Nothing;
            };
            match assignment_of(assignments, &from.key) {
                Assignment::SelfHosted { id, name } => Effective::Borrowed { id: *id, name, from },
                _ => Effective::Nothing,
            }
        }
    }
}

fn family_label(catalog: &Catalog, key: &str) -> (String, Release) {
    catalog.family(key).map(|f| (f.name.clone(), f.release)).unwrap_or_else(|| (key.to_owned(), Release::Ga))
}

/// The tab's sections, each with its visible features in catalog order.
pub fn sections(
    catalog: &Catalog,
    models: &[ModelSummary],
    assignments: &Assignments,
    serving: &ServingByModel,
    beta: bool,
) -> Vec<SectionView> {
    catalog
        .sections
        .iter()
        .filter_map(|section| {
            let visible = catalog.visible_features(&section.key, beta);
            if visible.is_empty() {
                return None;
            }
            // Every row of a section with more than one feature can copy its own model to the
            // rest of the section ("Apply to all").
            let rows = visible
                .iter()
                .map(|feature| {
                    let apply_to_all = (visible.len() > 1)
                        .then(|| apply_to_all_state(&section.title, feature, assignments, &visible, models));
                    feature_row(catalog, feature, models, assignments, serving, beta, apply_to_all)
                })
                .collect();
            Some(SectionView {
                key: section.key.clone(),
                title: section.title.clone(),
                description: section.description.clone(),
                features: rows,
                more_in_beta: !beta && section.beta_alert,
            })
        })
        .collect()
}

fn feature_row(
    catalog: &Catalog,
    feature: &Feature,
    models: &[ModelSummary],
    assignments: &Assignments,
    serving: &ServingByModel,
    beta: bool,
    apply_to_all: Option<ApplyToAll>,
) -> FeatureRow {
    let assignment = assignment_of(assignments, &feature.key).clone();
    let mut choices: Vec<(Release, ModelChoice)> = models
        .iter()
        .filter(|model| feature.accepts(&model.family))
        .filter_map(|model| {
            let (family, release) = family_label(catalog, &model.family);
            let current = matches!(&assignment, Assignment::SelfHosted { id, .. } if *id == model.id);
            (beta || !release.needs_beta() || current)
                .then(|| (release, ModelChoice { id: model.id, label: format!("{} ({family})", model.name) }))
        })
        .collect();
    choices.sort_by_key(|(release, _)| *release);
    let effective = effective_model(catalog, feature, assignments);
    // The note under an unassigned row that borrows another feature's model.
    let fallback = match (&assignment, feature.falls_back_to.as_deref().and_then(|key| catalog.feature(key)))
    {
        (Assignment::Unassigned, Some(target)) => Some(match &effective {
            Effective::Borrowed { name, .. } => format!("Uses the {} model: {name}", target.title),
            _ => format!("Uses the {} model once one is assigned", target.title),
        }),
        _ => None,
    };
    let status = match (&effective, &assignment) {
        (Effective::Nothing, Assignment::Disabled) => FeatureStatus::Disabled,
        (Effective::Nothing, _) => FeatureStatus::NoModel,
        (Effective::Own { id, .. } | Effective::Borrowed { id, .. }, _) => {
            FeatureStatus::Model(serving.get(id).cloned().unwrap_or(Serving::NotTested))
        }
    };
    let fallback_choice = feature
        .falls_back_to
        .as_deref()
        .and_then(|key| catalog.feature(key))
        .map(|target| super::domain::fallback_choice_label(&target.title));
    let answered_by = match effective {
        Effective::Own { name, .. } | Effective::Borrowed { name, .. } => Some(name.to_owned()),
        Effective::Nothing => None,
    };
    FeatureRow {
        key: feature.key.clone(),
        title: feature.title.clone(),
        release: feature.release,
        assignment,
        choices: choices.into_iter().map(|(_, choice)| choice).collect(),
        fallback,
        apply_to_all,
        answered_by,
        status,
        fallback_choice,
    }
}

fn apply_to_all_state(
    section_title: &str,
    main: &Feature,
    assignments: &Assignments,
    features: &[&Feature],
    models: &[ModelSummary],
) -> ApplyToAll {
    match assignment_of(assignments, &main.key) {
        Assignment::SelfHosted { id, .. } => {
            let family = models.iter().find(|m| m.id == *id).map(|m| m.family.as_str()).unwrap_or_default();
            if features.iter().all(|feature| feature.accepts(family)) {
                ApplyToAll { enabled: true, tooltip: format!("Apply to all {section_title} sub-features") }
            } else {
                ApplyToAll {
                    enabled: false,
                    tooltip: format!("This model cannot be applied to all {section_title} sub-features"),
                }
            }
        }
        _ => ApplyToAll {
            enabled: false,
            tooltip: format!("Assign a model to {} before applying to all", main.title),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"
        [[families]]
        key = "mistral"
        name = "Mistral"
        release = "ga"

        [[families]]
        key = "llama3"
        name = "Llama 3"
        release = "beta"

        [[sections]]
        key = "chat"
        title = "GitLab Duo Chat"
        description = "Chat."
        beta_alert = true

        [[sections]]
        key = "code"
        title = "Code Suggestions"
        description = "Code."

        [[features]]
        key = "duo_chat"
        title = "General Chat"
        section = "chat"
        release = "ga"
        families = ["mistral", "llama3"]
        unit_primitives = ["duo_chat"]

        [[features]]
        key = "duo_chat_explain_code"
        title = "Explain Code"
        section = "chat"
        release = "ga"
        families = ["mistral"]
        unit_primitives = ["explain_code"]
        falls_back_to = "duo_chat"

        [[features]]
        key = "duo_chat_troubleshoot"
        title = "Troubleshoot"
        section = "chat"
        release = "beta"
        families = ["mistral"]
        unit_primitives = ["troubleshoot_job"]
        falls_back_to = "duo_chat"

        [[features]]
        key = "code_completions"
        title = "Code Completion"
        section = "code"
        release = "ga"
        families = ["mistral"]
        unit_primitives = ["complete_code"]
    "#;

    fn catalog() -> Catalog {
        Catalog::parse(CATALOG).unwrap()
    }

    fn own(id: i64, name: &str) -> Assignment {
        Assignment::SelfHosted { id, name: name.to_owned() }
    }

    fn models() -> Vec<ModelSummary> {
        vec![
            ModelSummary { id: 1, name: "Mistral on vLLM".into(), family: "mistral".into() },
            ModelSummary { id: 2, name: "Llama".into(), family: "llama3".into() },
        ]
    }

    #[test]
    fn a_feature_uses_its_own_model_before_its_fallback() {
        let catalog = catalog();
        let explain = catalog.feature("duo_chat_explain_code").unwrap();
        let assignments = Assignments::from([
            ("duo_chat".into(), own(1, "A")),
            ("duo_chat_explain_code".into(), own(2, "B")),
        ]);
        assert_eq!(effective_model(&catalog, explain, &assignments), Effective::Own { id: 2, name: "B" });
    }

    #[test]
    fn an_unassigned_feature_borrows_its_fallbacks_model_and_a_disabled_one_does_not() {
        let catalog = catalog();
        let explain = catalog.feature("duo_chat_explain_code").unwrap();
        let general = catalog.feature("duo_chat").unwrap();
        let mut assignments = Assignments::from([("duo_chat".into(), own(1, "A"))]);
        assert_eq!(
            effective_model(&catalog, explain, &assignments),
            Effective::Borrowed { id: 1, name: "A", from: general }
        );
        assignments.insert("duo_chat_explain_code".into(), Assignment::Disabled);
        assert_eq!(effective_model(&catalog, explain, &assignments), Effective::Nothing);
        assert_eq!(effective_model(&catalog, explain, &Assignments::new()), Effective::Nothing);
        let completion = catalog.feature("code_completions").unwrap();
        assert_eq!(effective_model(&catalog, completion, &assignments), Effective::Nothing, "no fallback");
    }

    #[test]
    fn sections_show_visible_features_with_compatible_choices_and_the_fallback_note() {
        let catalog = catalog();
        let assignments = Assignments::from([("duo_chat".into(), own(1, "Mistral on vLLM"))]);
        let sections = sections(&catalog, &models(), &assignments, &ServingByModel::new(), false);
        assert_eq!(sections.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["chat", "code"]);
        let chat = &sections[0];
        assert!(chat.more_in_beta, "a beta feature is hidden while beta is off");
        let keys: Vec<&str> = chat.features.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["duo_chat", "duo_chat_explain_code"]);
        let general = &chat.features[0];
        assert_eq!(
            general.choices.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(),
            ["Mistral on vLLM (Mistral)"]
        );
        assert_eq!(general.apply_to_all.as_ref().map(|a| a.enabled), Some(true));
        let explain = &chat.features[1];
        assert_eq!(explain.fallback.as_deref(), Some("Uses the General Chat model: Mistral on vLLM"));
        assert_eq!(explain.answered_by.as_deref(), Some("Mistral on vLLM"));
        assert_eq!(
            explain.apply_to_all.as_ref().map(|a| a.enabled),
            Some(false),
            "every row of a section of several has its own, enabled once the row has a model"
        );
        let code = &sections[1];
        assert_eq!(code.features[0].apply_to_all, None, "a section of one row has none");
    }

    #[test]
    fn beta_models_are_offered_only_while_beta_is_on_or_while_assigned() {
        let catalog = catalog();
        let general = |sections: &[SectionView]| sections[0].features[0].choices.len();
        assert_eq!(
            general(&sections(&catalog, &models(), &Assignments::new(), &ServingByModel::new(), false)),
            1
        );
        assert_eq!(
            general(&sections(&catalog, &models(), &Assignments::new(), &ServingByModel::new(), true)),
            2
        );
        let assigned = Assignments::from([("duo_chat".into(), own(2, "Llama"))]);
        let with_beta_model = sections(&catalog, &models(), &assigned, &ServingByModel::new(), false);
        assert_eq!(general(&with_beta_model), 2, "the current choice stays visible");
        assert_eq!(with_beta_model[0].features[0].choices[1].label, "Llama (Llama 3)", "GA before beta");
    }

    #[test]
    fn a_feature_shows_the_status_of_the_model_that_answers_for_it_and_readiness_counts_them() {
        use crate::features::domain::Readiness;
        let catalog = catalog();
        let at = |minute: u32| {
            chrono::DateTime::from_timestamp(1_764_600_000 + i64::from(minute) * 60, 0).unwrap()
        };
        let serving = ServingByModel::from([(
            1,
            Serving::Failing { since: at(3), message: "Could not connect".into() },
        )]);
        let mut assignments = Assignments::from([("duo_chat".into(), own(1, "Mistral on vLLM"))]);
        let status = |assignments: &Assignments, serving: &ServingByModel| {
            sections(&catalog, &models(), assignments, serving, false)
                .iter()
                .flat_map(|s| s.features.iter().map(|f| (f.key.clone(), f.status.clone())))
                .collect::<HashMap<_, _>>()
        };
        let failing = status(&assignments, &serving);
        let expected = FeatureStatus::Model(serving[&1].clone());
        assert_eq!(failing["duo_chat"], expected);
        assert_eq!(failing["duo_chat_explain_code"], expected, "a borrowed model's status is the feature's");
        assert_eq!(failing["code_completions"], FeatureStatus::NoModel);
        assert_eq!(expected.text(), "Failing since 2025-12-01 14:43 UTC");

        let untested = status(&assignments, &ServingByModel::new());
        assert_eq!(untested["duo_chat"], FeatureStatus::Model(Serving::NotTested));
        assert_eq!(untested["duo_chat"].text(), "Not tested");

        assignments.insert("code_completions".into(), Assignment::Disabled);
        let ready = ServingByModel::from([(1, Serving::Ready { tested_at: at(5) })]);
        let sections = sections(&catalog, &models(), &assignments, &ready, false);
        let readiness = Readiness::of(&sections);
        assert_eq!(readiness.summary(), "Features ready: 2 of 2", "a disabled feature is not counted");
        assignments.remove("code_completions");
        let readiness = Readiness::of(&self::sections(&catalog, &models(), &assignments, &ready, false));
        assert_eq!(readiness.summary(), "Features ready: 2 of 3");
        assert_eq!(readiness.not_ready, [("Code Completion".to_owned(), FeatureStatus::NoModel)]);
    }
}
