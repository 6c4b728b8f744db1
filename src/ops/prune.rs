//! `sparkbox image prune`: the sparkbox images and build stages nothing on
//! the engine needs, and their removal. What is chosen is a pure function
//! of the engine's image and container lists ([`select`]), so the rules are
//! tested without an engine:
//!
//! - a sparkbox image is one tagged in [`IMAGE_REPOSITORY`], or an untagged
//!   one labelled `io.sparkbox.image=jupyter-spark` (a tag that went to a
//!   newer build leaves it so); a build stage is a `…-unlabelled` tag (an
//!   interrupted build) or an untagged image whose history has sparkbox's
//!   own install steps ([`is_sparkbox_stage`]) — never a foreign image;
//! - kept: every image any container uses (sparkbox's or not, running or
//!   stopped: a stopped cluster still needs its image), the current
//!   settings' image unless `--all`, an image another tag names too, and
//!   an image others are built on;
//! - each removal is the engine's unforced one, so the engine itself
//!   refuses an image a container took in the meantime.

use std::collections::{BTreeSet, HashMap};

use crate::engine::{ContainerState, Engine, ImageSummary};
use crate::error::{Error, Result};
use crate::model::labels::{self, Labelled};
use crate::model::recipe::IMAGE_REPOSITORY;

/// The tag suffixes of the first half of a build, before the image is
/// finished: today's (`image::STAGE_SUFFIX`) and the one the recipe before
/// it left ("-unlabelled").
pub const STAGE_SUFFIXES: [&str; 2] = [crate::image::STAGE_SUFFIX, "-unlabelled"];

/// Where sparkbox's Dockerfiles copy their install inputs: an untagged
/// image with every copy of one of these lists in its history is one of
/// sparkbox's build stages. The first is today's Dockerfile (a unit test
/// holds it to the embedded one); the second the recipe before it (a
/// `deps` stage with the CA and the script copied one by one).
pub const STAGE_MARKERS: [&[&str]; 2] = [
    &["/tmp/sparkbox-build/"],
    &["/tmp/sparkbox-ca.crt", "/tmp/install-deps.sh"],
];

/// What kind of thing a removal removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A tagged sparkbox image.
    Image,
    /// An untagged sparkbox image whose tag went to a newer build.
    Untagged,
    /// A build stage: an `-unlabelled` tag or the `deps` stage.
    Stage,
}

/// One image to remove.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Removal {
    /// Its ID.
    pub id: String,
    /// What to ask the engine to remove, in order: its sparkbox tags, or
    /// its ID when it has none.
    pub references: Vec<String>,
    /// How the output names it.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// Bytes its removal frees (with the untagged parents that go with it).
    pub frees: i64,
}

/// A sparkbox image that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kept {
    /// How the output names it.
    pub name: String,
    /// Why it stays.
    pub reason: String,
}

/// What a prune removes and what it keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PrunePlan {
    /// The removals, in the order they run (an image before the ones it is built on).
    pub remove: Vec<Removal>,
    /// The sparkbox images kept.
    pub kept: Vec<Kept>,
}

impl PrunePlan {
    /// Bytes the whole plan frees.
    pub fn total(&self) -> i64 {
        self.remove.iter().map(|r| r.frees).sum()
    }

    /// How many removals are images, how many build stages.
    pub fn counts(&self) -> (usize, usize) {
        let stages = self.remove.iter().filter(|r| r.kind == Kind::Stage).count();
        (self.remove.len() - stages, stages)
    }
}

/// True when an image's history (its steps' "created by" texts) has both
/// of sparkbox's `deps`-stage copies: `COPY … in /tmp/sparkbox-ca.crt` and
/// `COPY … in /tmp/install-deps.sh`.
pub fn is_sparkbox_stage(history: &[String]) -> bool {
    STAGE_MARKERS.iter().any(|markers| {
        markers.iter().all(|dest| {
            history.iter().any(|step| {
                let step = step.trim_end();
                (step.contains(" COPY ") || step.contains(" ADD "))
                    && step.ends_with(&format!(" in {dest}"))
            })
        })
    })
}

fn is_sparkbox_tag(tag: &str) -> bool {
    tag.strip_prefix(IMAGE_REPOSITORY)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// A tag of `image` that sparkbox made: its own repository, or the name a
/// registry knows the image by (`image push`, a pull with --registry):
/// "REG/jupyter-spark:<spark>-<12 hex of the image's content hash>".
fn is_ours(image: &ImageSummary, tag: &str) -> bool {
    if is_sparkbox_tag(tag) {
        return true;
    }
    let Some(hash) = image.labels.get(labels::IMAGE_HASH) else {
        return false;
    };
    let (repo, t) = crate::engine::split_reference(tag);
    is_labelled_sparkbox(image)
        && repo.ends_with(&format!("/{}", crate::model::registry::REMOTE_NAME))
        && hash.len() >= 12
        && t.ends_with(&format!("-{}", &hash[..12]))
}

fn is_labelled_sparkbox(image: &ImageSummary) -> bool {
    image.labels.get(labels::IMAGE).map(String::as_str) == Some("jupyter-spark")
}

fn short(id: &str) -> &str {
    let hex = id.trim_start_matches("sha256:");
    &hex[..hex.len().min(12)]
}

/// The untagged images with nothing built on them whose history
/// [`select`] needs to tell a sparkbox build stage from anyone else's.
pub fn stage_suspects(images: &[ImageSummary]) -> Vec<String> {
    let parents: BTreeSet<&str> = images
        .iter()
        .filter_map(|i| i.parent_id.as_deref())
        .collect();
    images
        .iter()
        .filter(|i| i.repo_tags.is_empty() && !is_labelled_sparkbox(i))
        .filter(|i| !parents.contains(i.id.as_str()))
        .map(|i| i.id.clone())
        .collect()
}

/// "demo-master (cluster demo)", or the bare name of a foreign container.
fn container_text(c: &ContainerState) -> String {
    match Labelled(&c.labels).cluster() {
        Some(cluster) => format!("{} (cluster {cluster})", c.name),
        None => c.name.clone(),
    }
}

/// The plan: of `images` (every image on the engine), the sparkbox images
/// and build stages (`stages`: the untagged IDs [`is_sparkbox_stage`]
/// recognised) that no container of `containers` (every container) uses,
/// except the image tagged `current` (None with `--all`).
pub fn select(
    images: &[ImageSummary],
    stages: &BTreeSet<String>,
    containers: &[ContainerState],
    current: Option<&str>,
) -> PrunePlan {
    let by_id: HashMap<&str, &ImageSummary> = images.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for image in images {
        if let Some(parent) = image.parent_id.as_deref() {
            children.entry(parent).or_default().push(image.id.as_str());
        }
    }
    let mut users: HashMap<&str, Vec<String>> = HashMap::new();
    for c in containers {
        users
            .entry(c.image_id.as_str())
            .or_default()
            .push(container_text(c));
    }
    for names in users.values_mut() {
        names.sort();
    }

    let mut ordered: Vec<&ImageSummary> = images.iter().collect();
    ordered.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));

    // The sparkbox images and stages, each with its own reason to stay.
    let mut kept = Vec::new();
    let mut chosen: Vec<(&ImageSummary, Kind, String)> = Vec::new();
    for image in ordered {
        let ours: Vec<&String> = image
            .repo_tags
            .iter()
            .filter(|t| is_ours(image, t))
            .collect();
        let foreign: Vec<&String> = image
            .repo_tags
            .iter()
            .filter(|t| !is_ours(image, t))
            .collect();
        let untagged = image.repo_tags.is_empty();
        let has_children = children.contains_key(image.id.as_str());
        let (kind, name) = if !ours.is_empty() {
            let name = ours
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if ours
                .iter()
                .all(|t| STAGE_SUFFIXES.iter().any(|s| t.ends_with(s)))
            {
                (Kind::Stage, format!("build stage {name}"))
            } else {
                (Kind::Image, name)
            }
        } else if untagged && is_labelled_sparkbox(image) && !has_children {
            (
                Kind::Untagged,
                format!("untagged sparkbox image {}", short(&image.id)),
            )
        } else if untagged && !has_children && stages.contains(&image.id) {
            (
                Kind::Stage,
                format!(
                    "untagged build stage {} (the install step)",
                    short(&image.id)
                ),
            )
        } else {
            continue;
        };
        let reason = if let Some(u) = users.get(image.id.as_str()) {
            Some(format!("used by {}", u.join(", ")))
        } else if current.is_some_and(|c| ours.iter().any(|t| t.as_str() == c)) {
            Some("the current settings' image (`--all` removes it too)".to_string())
        } else if !foreign.is_empty() {
            Some(format!(
                "also tagged {}",
                foreign
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => kept.push(Kept { name, reason }),
            None => chosen.push((image, kind, name)),
        }
    }

    // An image others are built on stays unless all of those go too
    // (directly, or as untagged parents that go with them).
    let mut going: BTreeSet<&str> = chosen.iter().map(|(i, _, _)| i.id.as_str()).collect();
    loop {
        let doomed = |id: &str, going: &BTreeSet<&str>| -> bool {
            fn goes<'a>(
                id: &'a str,
                going: &BTreeSet<&'a str>,
                by_id: &HashMap<&'a str, &'a ImageSummary>,
                children: &HashMap<&'a str, Vec<&'a str>>,
                users: &HashMap<&str, Vec<String>>,
            ) -> bool {
                if going.contains(id) {
                    return true;
                }
                let Some(image) = by_id.get(id) else {
                    return false;
                };
                let kids = children.get(id).map(Vec::as_slice).unwrap_or(&[]);
                image.repo_tags.is_empty()
                    && !users.contains_key(id)
                    && !kids.is_empty()
                    && kids.iter().all(|k| goes(k, going, by_id, children, users))
            }
            children
                .get(id)
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .all(|k| goes(k, going, &by_id, &children, &users))
        };
        let blocked: Vec<&str> = going
            .iter()
            .copied()
            .filter(|id| !doomed(id, &going))
            .collect();
        if blocked.is_empty() {
            break;
        }
        for id in blocked {
            going.remove(id);
        }
    }
    let mut remove_order: Vec<(&ImageSummary, Kind, String)> = Vec::new();
    for (image, kind, name) in chosen {
        if going.contains(image.id.as_str()) {
            remove_order.push((image, kind, name));
        } else {
            let on_it: Vec<String> = children
                .get(image.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .filter_map(|k| by_id.get(k))
                .map(|k| {
                    k.repo_tags
                        .first()
                        .cloned()
                        .unwrap_or_else(|| short(&k.id).to_string())
                })
                .collect();
            kept.push(Kept {
                name,
                reason: format!("images are built on it ({})", on_it.join(", ")),
            });
        }
    }
    // An image before the ones it is built on: deepest first.
    let depth = |id: &str| {
        let mut n = 0;
        let mut at = by_id.get(id).and_then(|i| i.parent_id.as_deref());
        while let Some(p) = at {
            n += 1;
            at = by_id.get(p).and_then(|i| i.parent_id.as_deref());
        }
        n
    };
    remove_order.sort_by_key(|(i, _, _)| std::cmp::Reverse(depth(&i.id)));

    // What each removal frees, as the engine removes: the image once no tag
    // names it, then each untagged parent nothing else needs.
    let mut tags: HashMap<&str, BTreeSet<&str>> = images
        .iter()
        .map(|i| {
            (
                i.id.as_str(),
                i.repo_tags.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let mut alive: BTreeSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    let own_bytes = |id: &str| -> i64 {
        let Some(image) = by_id.get(id) else { return 0 };
        let below = image
            .parent_id
            .as_deref()
            .and_then(|p| by_id.get(p))
            .map(|p| p.size)
            .unwrap_or(0);
        (image.size - below).max(0)
    };
    let needed = |id: &str, tags: &HashMap<&str, BTreeSet<&str>>, alive: &BTreeSet<&str>| {
        tags.get(id).is_some_and(|t| !t.is_empty())
            || users.contains_key(id)
            || children
                .get(id)
                .is_some_and(|kids| kids.iter().any(|k| alive.contains(k)))
    };
    let mut remove = Vec::new();
    for (image, kind, name) in remove_order {
        let references: Vec<String> = if image.repo_tags.is_empty() {
            vec![image.id.clone()]
        } else {
            image.repo_tags.clone()
        };
        if let Some(t) = tags.get_mut(image.id.as_str()) {
            t.clear();
        }
        let mut frees = 0;
        let mut at = Some(image.id.as_str());
        while let Some(id) = at {
            if !alive.contains(id) || needed(id, &tags, &alive) {
                break;
            }
            alive.remove(id);
            frees += own_bytes(id);
            at = by_id.get(id).and_then(|i| i.parent_id.as_deref());
        }
        remove.push(Removal {
            id: image.id.clone(),
            references,
            name,
            kind,
            frees,
        });
    }
    kept.sort_by(|a, b| a.name.cmp(&b.name));
    PrunePlan { remove, kept }
}

/// Reads the engine's images, containers and the histories of untagged
/// images, and makes the plan (keeping the image tagged `current`).
pub async fn plan<E: Engine>(engine: &E, current: Option<&str>) -> Result<PrunePlan> {
    let images = engine.images(&[]).await?;
    let containers = engine.containers(&[]).await?;
    let mut stages = BTreeSet::new();
    for id in stage_suspects(&images) {
        match engine.image_history(&id).await {
            Ok(history) if is_sparkbox_stage(&history) => {
                stages.insert(id);
            }
            Ok(_) => {}
            // Removed meanwhile: nothing to prune.
            Err(Error::Gone { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(select(&images, &stages, &containers, current))
}

/// Runs the plan's removals, each reported to `removed` once done. The
/// engine's refusals (a container took an image in the meantime) do not
/// stop the others; they come back at the end, naming the image and what
/// uses it.
pub async fn execute<E: Engine>(
    engine: &E,
    plan: &PrunePlan,
    removed: &mut dyn FnMut(&Removal),
) -> Result<()> {
    let mut refused: Vec<Error> = Vec::new();
    for removal in &plan.remove {
        let mut outcome = Ok(());
        for reference in &removal.references {
            outcome = engine.remove_image_unforced(reference).await;
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Ok(()) => removed(removal),
            Err(Error::InUse { detail, .. }) => {
                refused.push(in_use(engine, removal, &detail).await);
            }
            Err(e) => return Err(e),
        }
    }
    match refused.len() {
        0 => Ok(()),
        1 => Err(refused.remove(0)),
        n => Err(Error::InUse {
            image: format!("{n} images"),
            detail: refused
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// The engine's refusal, with the containers that use the image now.
async fn in_use<E: Engine>(engine: &E, removal: &Removal, detail: &str) -> Error {
    let users: Vec<String> = engine
        .containers(&[])
        .await
        .unwrap_or_default()
        .iter()
        .filter(|c| c.image_id == removal.id)
        .map(container_text)
        .collect();
    let detail = if users.is_empty() {
        detail.to_string()
    } else {
        format!(
            "used by {} since the plan was made ({detail})",
            users.join(", ")
        )
    };
    Error::InUse {
        image: removal.name.clone(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: i64 = 1_000_000_000;

    fn image(id: &str, parent: Option<&str>, tags: &[&str], size: i64) -> ImageSummary {
        ImageSummary {
            id: id.to_string(),
            parent_id: parent.map(str::to_string),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            labels: HashMap::new(),
            size,
            created: 0,
        }
    }

    fn labelled(mut i: ImageSummary) -> ImageSummary {
        i.labels
            .insert(labels::IMAGE.to_string(), "jupyter-spark".to_string());
        i
    }

    #[test]
    fn a_registrys_name_for_the_image_is_sparkboxs_and_others_are_not() {
        let mut i = labelled(image("a", None, &[], 1));
        i.labels.insert(
            labels::IMAGE_HASH.to_string(),
            format!("abcdef123456{}", "0".repeat(52)),
        );
        assert!(is_ours(&i, "sparkbox/jupyter-spark:4.3.0-abcdef123456"));
        assert!(is_ours(
            &i,
            "127.0.0.1:5000/sbx/jupyter-spark:4.3.0-abcdef123456"
        ));
        // Another hash, another name, or an image without the labels: not ours.
        assert!(!is_ours(
            &i,
            "127.0.0.1:5000/sbx/jupyter-spark:4.3.0-ffffff123456"
        ));
        assert!(!is_ours(&i, "127.0.0.1:5000/sbx/mine:4.3.0-abcdef123456"));
        let plain = image("b", None, &[], 1);
        assert!(!is_ours(
            &plain,
            "127.0.0.1:5000/sbx/jupyter-spark:4.3.0-abcdef123456"
        ));
    }

    fn container(name: &str, cluster: Option<&str>, image_id: &str, state: &str) -> ContainerState {
        let mut labels_map = HashMap::new();
        if let Some(c) = cluster {
            labels_map.insert(labels::CLUSTER.to_string(), c.to_string());
        }
        ContainerState {
            name: name.to_string(),
            image_id: image_id.to_string(),
            node: None,
            labels: labels_map,
            state: state.to_string(),
            ..Default::default()
        }
    }

    fn names(plan: &PrunePlan) -> Vec<&str> {
        plan.remove.iter().map(|r| r.name.as_str()).collect()
    }

    /// A machine as builds leave it: the base, the deps stage on it, and
    /// three sparkbox images (each a labelled image on its unlabelled parent).
    fn machine() -> Vec<ImageSummary> {
        let tag = |t: &str| format!("{IMAGE_REPOSITORY}:{t}");
        vec![
            image("base", None, &["debian:bookworm-slim"], 80_000_000),
            image("deps-1", Some("base"), &[], 1_000_000_000),
            image("deps", Some("deps-1"), &[], 1_480_000_000),
            image("old-u", None, &[], 1_360_000_000),
            labelled(image(
                "old",
                Some("old-u"),
                &[&tag("4.0.1-aaaaaaaaaaaa")],
                1_360_000_000,
            )),
            image("run-u", None, &[], 1_360_000_000),
            labelled(image(
                "run",
                Some("run-u"),
                &[&tag("3.5.7-bbbbbbbbbbbb")],
                1_360_000_000,
            )),
            image("cur-u", None, &[], 1_360_000_000),
            labelled(image(
                "cur",
                Some("cur-u"),
                &[&tag("4.0.1-cccccccccccc")],
                1_360_000_000,
            )),
            image("foreign", None, &[], 5 * GB),
        ]
    }

    #[test]
    fn keeps_what_containers_use_and_the_current_image() {
        let images = machine();
        let stages = BTreeSet::from(["deps".to_string()]);
        let containers = vec![container("demo-master", Some("demo"), "run", "exited")];
        let current = format!("{IMAGE_REPOSITORY}:4.0.1-cccccccccccc");
        let plan = select(&images, &stages, &containers, Some(&current));
        assert_eq!(
            names(&plan),
            vec![
                "untagged build stage deps (the install step)",
                "sparkbox/jupyter-spark:4.0.1-aaaaaaaaaaaa"
            ]
        );
        // The stage frees itself and its untagged parent, not the base; the
        // old image frees its own layer and its unlabelled parent's.
        assert_eq!(plan.remove[0].frees, 1_480_000_000 - 80_000_000);
        assert_eq!(plan.remove[0].references, vec!["deps".to_string()]);
        assert_eq!(plan.remove[1].frees, 1_360_000_000);
        assert_eq!(plan.total(), 2_760_000_000);
        let kept: Vec<(&str, &str)> = plan
            .kept
            .iter()
            .map(|k| (k.name.as_str(), k.reason.as_str()))
            .collect();
        assert_eq!(
            kept,
            vec![
                (
                    "sparkbox/jupyter-spark:3.5.7-bbbbbbbbbbbb",
                    "used by demo-master (cluster demo)"
                ),
                (
                    "sparkbox/jupyter-spark:4.0.1-cccccccccccc",
                    "the current settings' image (`--all` removes it too)"
                ),
            ]
        );
        // --all: the current one goes too, the used one still stays.
        let all = select(&images, &stages, &containers, None);
        assert_eq!(all.remove.len(), 3, "{all:?}");
        assert!(all.kept.iter().all(|k| k.reason.starts_with("used by")));
        // No stage recognised: the foreign untagged images stay untouched.
        let none = select(&images, &BTreeSet::new(), &containers, None);
        assert!(none.remove.iter().all(|r| r.kind != Kind::Stage));
    }

    #[test]
    fn any_container_keeps_its_image_even_a_foreign_one() {
        let images = machine();
        let containers = vec![
            container("someone-elses", None, "old", "created"),
            container("x", None, "deps", "running"),
        ];
        let plan = select(&images, &BTreeSet::from(["deps".into()]), &containers, None);
        let removed: Vec<&str> = plan.remove.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(removed, vec!["cur", "run"]);
        assert!(plan
            .kept
            .iter()
            .any(|k| k.reason == "used by someone-elses"));
    }

    #[test]
    fn a_container_on_an_untagged_parent_keeps_that_parent() {
        // A container made from the unlabelled half of an image: removing
        // the image frees only its own layer, as the engine would.
        let images = machine();
        let containers = vec![container("c", None, "old-u", "exited")];
        let plan = select(&images, &BTreeSet::new(), &containers, None);
        let old = plan
            .remove
            .iter()
            .find(|r| r.id == "old")
            .expect("old goes");
        assert_eq!(old.frees, 0);
    }

    #[test]
    fn stage_tags_other_tags_and_children() {
        let tag = |t: &str| format!("{IMAGE_REPOSITORY}:{t}");
        let images = vec![
            // An interrupted build: the unlabelled half still tagged.
            image("half", None, &[&tag("4.0.1-dddddddddddd-unlabelled")], GB),
            // A sparkbox image someone tagged for themselves too.
            labelled(image(
                "mine",
                None,
                &[&tag("4.0.1-eeeeeeeeeeee"), "me/spark:1"],
                GB,
            )),
            // A sparkbox image another image is built on.
            labelled(image("basey", None, &[&tag("4.0.1-ffffffffffff")], GB)),
            image("child", Some("basey"), &["me/derived:1"], GB + 10),
            // A labelled image whose tag went to a newer build.
            labelled(image("moved", None, &[], GB)),
            // An unlabelled half whose labelled image goes too.
            image("u", None, &[&tag("3.5.7-111111111111-unlabelled")], GB),
            labelled(image("l", Some("u"), &[&tag("3.5.7-111111111111")], GB)),
        ];
        let plan = select(&images, &BTreeSet::new(), &[], None);
        let removed: Vec<(&str, Kind)> = plan
            .remove
            .iter()
            .map(|r| (r.id.as_str(), r.kind))
            .collect();
        // The labelled image before the half it is built on.
        assert_eq!(
            removed,
            vec![
                ("l", Kind::Image),
                ("half", Kind::Stage),
                ("moved", Kind::Untagged),
                ("u", Kind::Stage),
            ]
        );
        assert_eq!(plan.remove[0].frees, 0);
        assert_eq!(plan.remove[3].frees, GB);
        let reasons: Vec<&str> = plan.kept.iter().map(|k| k.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "also tagged me/spark:1",
                "images are built on it (me/derived:1)"
            ]
        );
    }

    #[test]
    fn stages_are_told_by_sparkbox_install_copies() {
        let h = |steps: &[&str]| steps.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stage = h(&[
            "|1 EXPECTED_VERSIONS={} /bin/sh -c chmod 0755 /opt/sparkbox/bin/*",
            "/bin/sh -c #(nop) COPY dir:0a1b in /opt/sparkbox/bin/ ",
            "|9 PYSPARK_VERSION=4.0.1 /bin/sh -c sh /tmp/install-deps.sh",
            "/bin/sh -c #(nop) COPY file:2c3d in /tmp/install-deps.sh ",
            "/bin/sh -c #(nop) COPY file:4e5f in /tmp/sparkbox-ca.crt ",
            "/bin/sh -c #(nop)  ARG PYSPARK_VERSION",
            "Imported from -",
        ]);
        assert!(is_sparkbox_stage(&stage));
        // An interrupted install: the copies are there, the RUN is not.
        assert!(is_sparkbox_stage(&stage[3..]));
        // Someone else's image that runs a script of the same name.
        assert!(!is_sparkbox_stage(&h(&[
            "/bin/sh -c sh /tmp/install-deps.sh",
            "/bin/sh -c #(nop) COPY file:aa in /tmp/install-deps.sh ",
        ])));
        assert!(!is_sparkbox_stage(&h(&[
            "/bin/sh -c echo /tmp/sparkbox-ca.crt /tmp/install-deps.sh"
        ])));
        assert!(!is_sparkbox_stage(&[]));
        // Today's recipe: the whole context copied once.
        assert!(is_sparkbox_stage(&h(&[
            "/bin/sh -c sh /tmp/sparkbox-build/build/install-deps.sh",
            "/bin/sh -c #(nop) COPY dir:77aa in /tmp/sparkbox-build/ ",
        ])));
    }

    #[test]
    fn the_markers_are_the_dockerfiles_own_copies() {
        let dockerfile = crate::model::recipe::IMAGE_FILES
            .iter()
            .find(|f| f.path == "Dockerfile")
            .map(|f| String::from_utf8_lossy(f.contents).to_string())
            .expect("the embedded Dockerfile");
        for dest in STAGE_MARKERS[0] {
            assert!(
                dockerfile
                    .lines()
                    .any(|l| l.starts_with("COPY ") && l.trim_end().ends_with(&format!(" {dest}"))),
                "the Dockerfile no longer copies {dest}: update STAGE_MARKERS"
            );
        }
    }

    #[test]
    fn suspects_are_untagged_leaves_without_the_label() {
        let images = machine();
        let suspects = stage_suspects(&images);
        assert_eq!(suspects, vec!["deps".to_string(), "foreign".to_string()]);
    }
}
