//! Who may do what, where and when.
//!
//! The registry records decisions made by many agencies; each may record only what happens in
//! its own part of the tree, and only on the days that part was its own. This crate holds the
//! operator's policy and answers three questions, each in one place:
//!
//! - **Who calls** ([`Access::identify`]): the name in a client certificate, or the subject of a
//!   bearer token verified against the keys of a JWKS file ([`tokens`]), given the roles and the
//!   agency the policy file assigns to it.
//! - **May it do this at all** ([`Access::allows`]): an action that concerns no unit (reading,
//!   auditing, operating, defining a pilot model), decided once per identity and action.
//! - **May it do this here, then** ([`Access::check`]): a write, decided by the units it
//!   touches on the days of its facts ([`registry_domain::Reach`]), with the tree as it stood
//!   on each day given to the rules as the units' hierarchy.
//!
//! The rules are Cedar policies ([`policy`]) written against a fixed schema
//! (`schema.cedarschema`), validated when the file is loaded: an operator can read them, and a
//! mistake stops the daemon before it serves.

pub mod policy;
pub mod tokens;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use cedar_policy::{
    Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request,
};
use registry_domain::{Command, Date, Place, Reach, Registry, UnitId};
use thiserror::Error;

pub use policy::{Access, PolicyError};

/// What a call or a write does, as the policy names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Reading the registry.
    Read,
    /// The auditors' questions.
    Audit,
    /// Rebuilding read models, store statistics.
    Operate,
    /// Defining a pilot model.
    Define,
    /// Recording persons, offices, holdings, adoptions and terms.
    Record,
    /// Establishing, renaming, moving and reorganising units.
    Reorganise,
    /// Corrections and retractions.
    Correct,
}

impl Action {
    /// Every action, in the order of [`Action::index`].
    pub const ALL: [Action; 7] = [
        Self::Read,
        Self::Audit,
        Self::Operate,
        Self::Define,
        Self::Record,
        Self::Reorganise,
        Self::Correct,
    ];

    /// The name the policy uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Audit => "audit",
            Self::Operate => "operate",
            Self::Define => "define",
            Self::Record => "record",
            Self::Reorganise => "reorganise",
            Self::Correct => "correct",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The action a command is.
    pub fn of(command: &Command) -> Self {
        match command {
            Command::RegisterPerson { .. }
            | Command::RenamePerson { .. }
            | Command::AddPersonAlias { .. }
            | Command::CreateOffice { .. }
            | Command::AbolishOffice { .. }
            | Command::StartHolding { .. }
            | Command::RecordHolding { .. }
            | Command::EndHolding { .. }
            | Command::AdoptModel { .. }
            | Command::WithdrawModel { .. }
            | Command::OpenTerm { .. } => Self::Record,
            Command::EstablishUnit { .. }
            | Command::RenameUnit { .. }
            | Command::MoveUnit { .. }
            | Command::Reorganise(_) => Self::Reorganise,
            Command::DefineModel { .. } => Self::Define,
            Command::CorrectPerson { .. }
            | Command::CorrectOffice { .. }
            | Command::CorrectHolding { .. }
            | Command::Retract { .. } => Self::Correct,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The longest name a caller may have (a certificate's common name has at most 64): names are
/// recorded with writes and echoed in refusals.
pub const MAX_NAME_CHARS: usize = 128;

/// How a caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A client certificate the server's CA signed.
    Certificate,
    /// A bearer token signed by a key of the JWKS file.
    Token,
}

impl Proof {
    /// As shown to the caller and in the access log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::Token => "token",
        }
    }
}

/// An authenticated caller, as the policy file describes it. Unit-free decisions are kept with
/// it, so that a caller's reads are decided once (identities are cached by name and by token).
#[derive(Debug)]
pub struct Identity {
    /// The certificate's name or the token's subject.
    pub name: String,
    /// How it was proved.
    pub proof: Proof,
    /// The agency it acts for, if the policy file names one.
    pub agency: Option<String>,
    /// Its roles (none for a name the policy file does not know).
    pub roles: Vec<String>,
    /// The units whose trees its agency records.
    pub scopes: Vec<UnitId>,
    /// When its token expires (`None` for a certificate).
    pub expires: Option<SystemTime>,
    decided: [OnceLock<bool>; Action::ALL.len()],
    /// Its decisions in units, by action and the tree above the unit ([`Rules::permits_in`]).
    places: Mutex<HashMap<(Action, Tree), bool>>,
    /// It as the rules see it, made once.
    principal: OnceLock<Option<Entity>>,
    /// Its allowance of calls, where the policy sets one.
    bucket: Option<Arc<policy::Bucket>>,
}

impl Identity {
    fn new(
        name: String,
        proof: Proof,
        agency: Option<String>,
        roles: Vec<String>,
        scopes: Vec<UnitId>,
    ) -> Self {
        Self {
            name,
            proof,
            agency,
            roles,
            scopes,
            expires: None,
            decided: Default::default(),
            places: Mutex::default(),
            principal: OnceLock::new(),
            bucket: None,
        }
    }
}

/// A caller that could not be authenticated: the gRPC status is UNAUTHENTICATED.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Unauthenticated {
    /// Neither a certificate nor a token.
    #[error("no credentials: present a client certificate or an `authorization: Bearer` token")]
    NoCredentials,
    /// A bearer token was sent but this server accepts none.
    #[error("this server accepts no bearer tokens (no [tokens] in its policy)")]
    TokensNotAccepted,
    /// The `authorization` header is not `Bearer <token>`.
    #[error("the authorization header must be `Bearer <token>`")]
    NotBearer,
    /// A token that does not verify.
    #[error("bad token: {0}")]
    Token(#[from] tokens::TokenProblem),
    /// A certificate without a name.
    #[error("the client certificate names no subject")]
    Nameless,
    /// A certificate's name longer than [`MAX_NAME_CHARS`].
    #[error("the client certificate's name is longer than {MAX_NAME_CHARS} characters")]
    LongName,
}

/// An authenticated caller that may not do what it asked: the gRPC status is
/// PERMISSION_DENIED. Names the action and, for a write, the unit and day outside its scope.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Denied {
    /// The action is not the caller's at all.
    #[error("{who} may not {action}{roles}", roles = roles_note(roles))]
    Action {
        /// The caller.
        who: String,
        /// Its roles.
        roles: Vec<String>,
        /// The action.
        action: Action,
    },
    /// A place the write touches lies outside the caller's scope on its day.
    #[error(
        "{who} may not {action} in {unit} on {day}: outside its scope as the tree stood that \
         day"
    )]
    Place {
        /// The caller.
        who: String,
        /// The action.
        action: Action,
        /// The unit.
        unit: UnitId,
        /// The day.
        day: Date,
    },
    /// A person's record, outside every place the caller's scope holds.
    #[error(
        "{who} may not {action} this person's record: the person holds or held no office in \
         its scope"
    )]
    Person {
        /// The caller.
        who: String,
        /// The action.
        action: Action,
    },
}

fn roles_note(roles: &[String]) -> String {
    if roles.is_empty() {
        " (the policy gives it no role)".to_owned()
    } else {
        format!(" (roles: {})", roles.join(", "))
    }
}

/// The Cedar side: the validated rules and the schema's entity types, parsed once.
struct Rules {
    policies: cedar_policy::PolicySet,
    authorizer: cedar_policy::Authorizer,
    actions: [EntityUid; Action::ALL.len()],
    registry: EntityUid,
    types: Types,
}

/// The schema's entity type names.
struct Types {
    unit: EntityTypeName,
    caller: EntityTypeName,
    role: EntityTypeName,
    person: EntityTypeName,
}

/// What a request is about.
enum Resource<'a> {
    /// The registry as a whole.
    Registry,
    /// A unit, with the units above it and their parents, as the tree stood on a day.
    Place(&'a Tree),
    /// A person's record that reaches no unit.
    Person(registry_domain::PersonId),
}

/// A type name of the schema's namespace.
fn type_name(name: &str) -> EntityTypeName {
    #[allow(clippy::unwrap_used)] // The schema's own names, which parse (tested).
    format!("Registry::{name}").parse().unwrap()
}

impl Types {
    fn uid(kind: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id))
    }

    fn unit(&self, unit: UnitId) -> EntityUid {
        Self::uid(&self.unit, &unit.uuid().to_string())
    }
}

/// A unit and the units above it on a day, each with its parents that day.
type Tree = Vec<(UnitId, Vec<UnitId>)>;

/// The most unit decisions kept per caller; past it they are decided afresh.
const MAX_DECISIONS: usize = 4096;

impl Rules {
    fn new(policies: cedar_policy::PolicySet) -> Self {
        let action = type_name("Action");
        let types = Types {
            unit: type_name("Unit"),
            caller: type_name("Caller"),
            role: type_name("Role"),
            person: type_name("Person"),
        };
        Self {
            policies,
            authorizer: cedar_policy::Authorizer::new(),
            actions: Action::ALL.map(|a| Types::uid(&action, a.name())),
            registry: Types::uid(&type_name("Registry"), "registry"),
            types,
        }
    }

    /// The caller as an entity: its roles as parents, its agency and scopes as attributes.
    fn principal(&self, who: &Identity) -> Option<Entity> {
        let scopes = who
            .scopes
            .iter()
            .map(|u| cedar_policy::RestrictedExpression::new_entity_uid(self.types.unit(*u)));
        let attributes = HashMap::from([
            (
                "agency".to_owned(),
                cedar_policy::RestrictedExpression::new_string(
                    who.agency.clone().unwrap_or_default(),
                ),
            ),
            (
                "scopes".to_owned(),
                cedar_policy::RestrictedExpression::new_set(scopes),
            ),
        ]);
        let roles: HashSet<EntityUid> = who
            .roles
            .iter()
            .map(|r| Types::uid(&self.types.role, r))
            .collect();
        Entity::new(Types::uid(&self.types.caller, &who.name), attributes, roles).ok()
    }

    /// Whether the rules permit `who` to do `action` on `resource`.
    fn permits(&self, who: &Identity, action: Action, resource: Resource<'_>) -> bool {
        let Some(principal) = who.principal.get_or_init(|| self.principal(who)) else {
            return false;
        };
        let mut entities = vec![principal.clone()];
        let resource = match resource {
            Resource::Registry => self.registry.clone(),
            Resource::Person(person) => Types::uid(&self.types.person, &person.uuid().to_string()),
            Resource::Place(tree) => {
                for (unit, parents) in tree {
                    entities.push(Entity::new_no_attrs(
                        self.types.unit(*unit),
                        parents.iter().map(|p| self.types.unit(*p)).collect(),
                    ));
                }
                match tree.first() {
                    Some((unit, _)) => self.types.unit(*unit),
                    None => return false,
                }
            }
        };
        let Ok(entities) = Entities::from_entities(entities, None) else {
            return false;
        };
        let Ok(request) = Request::new(
            principal.uid(),
            self.actions[action.index()].clone(),
            resource,
            Context::empty(),
            None,
        ) else {
            return false;
        };
        self.authorizer
            .is_authorized(&request, &self.policies, &entities)
            .decision()
            == Decision::Allow
    }

    /// Whether the rules permit `who` to do `action` in `place`. The answer depends only on
    /// the caller, the action and the tree above the unit that day, so it is kept per caller
    /// under those: a registrar's writes in one commune are decided by the rules once.
    fn permits_in(
        &self,
        who: &Identity,
        action: Action,
        registry: &Registry,
        place: Place,
    ) -> bool {
        let tree = registry.ancestry_on(place.unit, place.day);
        let key = (action, tree);
        let decided = who.places.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(allowed) = decided.get(&key) {
            return *allowed;
        }
        drop(decided);
        let allowed = self.permits(who, action, Resource::Place(&key.1));
        let mut decided = who.places.lock().unwrap_or_else(|e| e.into_inner());
        if decided.len() >= MAX_DECISIONS {
            decided.clear();
        }
        decided.insert(key, allowed);
        allowed
    }
}

impl Access {
    /// Whether `who` may do `action`, which concerns no unit (decided once per identity).
    pub fn allows(&self, who: &Identity, action: Action) -> bool {
        *who.decided[action.index()]
            .get_or_init(|| self.rules().permits(who, action, Resource::Registry))
    }

    /// Whether `who` may have `command` recorded, in the registry as it stands before it:
    /// every place the command touches must lie in the caller's scope on its day, as the tree
    /// stood then (for a person's record, one place where the person held office suffices).
    pub fn check(
        &self,
        who: &Identity,
        command: &Command,
        registry: &Registry,
    ) -> Result<(), Denied> {
        let action = Action::of(command);
        let rules = self.rules();
        let denied_action = || Denied::Action {
            who: who.name.clone(),
            roles: who.roles.clone(),
            action,
        };
        match registry.reach(command) {
            Reach::Nowhere => self
                .allows(who, action)
                .then_some(())
                .ok_or_else(denied_action),
            Reach::Everywhere(places) => {
                for place in places {
                    if !rules.permits_in(who, action, registry, place) {
                        return Err(Denied::Place {
                            who: who.name.clone(),
                            action,
                            unit: place.unit,
                            day: place.day,
                        });
                    }
                }
                Ok(())
            }
            Reach::Person { person, places } => {
                let allowed = places
                    .iter()
                    .any(|place| rules.permits_in(who, action, registry, *place))
                    || rules.permits(who, action, Resource::Person(person));
                allowed.then_some(()).ok_or(Denied::Person {
                    who: who.name.clone(),
                    action,
                })
            }
        }
    }

    /// Who calls: the bearer token's subject when one is sent (a gateway's certificate
    /// carries its users' tokens), else the certificate's name; each with what the policy
    /// file gives that name.
    pub fn identify(
        &self,
        certificate: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Arc<Identity>, Unauthenticated> {
        if let Some(header) = authorization {
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(Unauthenticated::NotBearer)?;
            let verifier = self.tokens().ok_or(Unauthenticated::TokensNotAccepted)?;
            return Ok(verifier.verify(token, |subject, expires| {
                let mut identity = self.describe(subject, Proof::Token);
                identity.expires = Some(expires);
                identity
            })?);
        }
        let name = certificate.ok_or(Unauthenticated::NoCredentials)?;
        if name.trim().is_empty() {
            return Err(Unauthenticated::Nameless);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(Unauthenticated::LongName);
        }
        let mut known = self.certified().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(identity) = known.get(name) {
            return Ok(Arc::clone(identity));
        }
        let identity = Arc::new(self.describe(name, Proof::Certificate));
        known.insert(name.to_owned(), Arc::clone(&identity));
        Ok(identity)
    }
}

/// Identities proved by certificates, by name.
type Certified = Mutex<HashMap<String, Arc<Identity>>>;

#[cfg(test)]
mod tests;
