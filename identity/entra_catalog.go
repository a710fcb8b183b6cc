package identity

import (
	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// auditFacet fills an Entra audit event's typed facets.
type auditFacet func(ev *stelev1.IdentityEvent, a *auditRecord)

// auditActivity is one entry of the Entra audit catalogue.
type auditActivity struct {
	kind       string
	classUID   int32
	activityID int32
	facet      auditFacet
}

// entraUnknownKind is the kind of an Entra audit activity not in the
// catalogue; such events are flagged FlagUnknownActivity.
const entraUnknownKind = "entra.audit.unknown"

// entraActivities maps activityKey(activityDisplayName) to its kind, OCSF
// class and activity, and facets. docs/identity.md lists the same table;
// TestCatalogueDocumented keeps the two in step.
var entraActivities = map[string]auditActivity{}

func addActivity(name, kind string, classUID, activityID int32, f auditFacet) {
	entraActivities[activityKey(name)] = auditActivity{kind, classUID, activityID, f}
}

func init() {
	active, eligible := stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE, stelev1.AssignmentKind_ASSIGNMENT_KIND_ELIGIBLE
	perm, timed, anyDur := stelev1.AssignmentDuration_ASSIGNMENT_DURATION_PERMANENT, stelev1.AssignmentDuration_ASSIGNMENT_DURATION_TIMEBOUND, stelev1.AssignmentDuration_ASSIGNMENT_DURATION_UNSPECIFIED
	role := func(op string, k stelev1.AssignmentKind, d stelev1.AssignmentDuration, pim bool) auditFacet {
		return func(ev *stelev1.IdentityEvent, a *auditRecord) { rolePrivilege(ev, a, op, k, d, pim) }
	}
	durations := []struct {
		suffix string
		d      stelev1.AssignmentDuration
	}{{"permanent", perm}, {"timebound", timed}, {"renew", timed}}

	// Directory roles, direct.
	addActivity("Add member to role", "directory.role.member.add", ocsfUserAccessManagement, 1, role("grant", active, perm, false))
	addActivity("Remove member from role", "directory.role.member.remove", ocsfUserAccessManagement, 2, role("revoke", active, anyDur, false))
	addActivity("Add scoped member to role", "directory.role.member.add", ocsfUserAccessManagement, 1, role("grant", active, perm, false))
	addActivity("Remove scoped member from role", "directory.role.member.remove", ocsfUserAccessManagement, 2, role("revoke", active, anyDur, false))
	addActivity("Add eligible member to role", "directory.role.eligibility.add", ocsfUserAccessManagement, 1, role("grant", eligible, anyDur, false))
	addActivity("Remove eligible member from role", "directory.role.eligibility.remove", ocsfUserAccessManagement, 2, role("revoke", eligible, anyDur, false))
	addActivity("Remove permanent direct role assignment", "directory.role.member.remove", ocsfUserAccessManagement, 2, role("revoke", active, perm, true))
	addActivity("Add member to role outside of PIM (permanent)", "directory.role.member.add", ocsfUserAccessManagement, 1, role("grant", active, perm, false))

	// PIM assignments (eligible and active), per duration suffix.
	for _, d := range durations {
		s := " (" + d.suffix + ")"
		addActivity("Add eligible member to role in PIM requested"+s, "directory.role.eligibility.request", ocsfUserAccessManagement, 99, role("request", eligible, d.d, true))
		addActivity("Add eligible member to role in PIM completed"+s, "directory.role.eligibility.add", ocsfUserAccessManagement, 1, role("grant", eligible, d.d, true))
		addActivity("Add eligible member to role in PIM canceled"+s, "directory.role.eligibility.cancel", ocsfUserAccessManagement, 99, role("cancel", eligible, d.d, true))
		addActivity("Remove eligible member from role in PIM requested"+s, "directory.role.eligibility.remove.request", ocsfUserAccessManagement, 99, role("request", eligible, d.d, true))
		addActivity("Remove eligible member from role in PIM completed"+s, "directory.role.eligibility.remove", ocsfUserAccessManagement, 2, role("revoke", eligible, d.d, true))
		addActivity("Add member to role in PIM requested"+s, "directory.role.member.request", ocsfUserAccessManagement, 99, role("request", active, d.d, true))
		addActivity("Add member to role in PIM completed"+s, "directory.role.member.add", ocsfUserAccessManagement, 1, role("grant", active, d.d, true))
		addActivity("Remove member from role in PIM requested"+s, "directory.role.member.remove.request", ocsfUserAccessManagement, 99, role("request", active, d.d, true))
		addActivity("Remove member from role in PIM completed"+s, "directory.role.member.remove", ocsfUserAccessManagement, 2, role("revoke", active, d.d, true))
	}
	// PIM activation (just in time).
	addActivity("Add member to role requested (PIM activation)", "directory.role.activation.request", ocsfUserAccessManagement, 99, role("request", active, timed, true))
	addActivity("Add member to role approval requested (PIM activation)", "directory.role.activation.request", ocsfUserAccessManagement, 99, role("request", active, timed, true))
	addActivity("Add member to role request approved (PIM activation)", "directory.role.activation.approve", ocsfUserAccessManagement, 99, role("approve", active, timed, true))
	addActivity("Add member to role request denied (PIM activation)", "directory.role.activation.deny", ocsfUserAccessManagement, 99, role("deny", active, timed, true))
	addActivity("Add member to role completed (PIM activation)", "directory.role.activation", ocsfUserAccessManagement, 1, role("activate", active, timed, true))
	addActivity("Remove member from role completed (PIM deactivate)", "directory.role.deactivation", ocsfUserAccessManagement, 2, role("deactivate", active, timed, true))
	addActivity("Remove member from role (PIM activation expired)", "directory.role.activation.expire", ocsfUserAccessManagement, 2, role("expire", active, timed, true))
	addActivity("PIM activation request expired", "directory.role.activation.request.expire", ocsfUserAccessManagement, 99, role("expire", active, timed, true))

	// Conditional Access.
	addActivity("Add conditional access policy", "policy.conditional_access.add", ocsfEntityManagement, 1, caPolicy("add"))
	addActivity("Update conditional access policy", "policy.conditional_access.update", ocsfEntityManagement, 3, caPolicy("update"))
	addActivity("Delete conditional access policy", "policy.conditional_access.delete", ocsfEntityManagement, 4, caPolicy("delete"))

	// Security info (MFA / authentication methods).
	// A user acting on their own methods gets ".self"; the plain kinds are
	// an admin acting on someone else's (monitor alerts on those).
	addActivity("User registered security info", "user.security_info.add.self", ocsfAccountChange, 10, securityInfo("add", false))
	addActivity("User registered all required security info", "user.security_info.add.self", ocsfAccountChange, 10, securityInfo("add", false))
	addActivity("User updated security info", "user.security_info.update.self", ocsfAccountChange, 99, securityInfo("update", false))
	addActivity("User changed default security info", "user.security_info.update.self", ocsfAccountChange, 99, securityInfo("update", false))
	addActivity("User deleted security info", "user.security_info.remove.self", ocsfAccountChange, 11, securityInfo("remove", false))
	addActivity("Admin registered security info", "user.security_info.add", ocsfAccountChange, 10, securityInfo("add", true))
	addActivity("Admin updated security info", "user.security_info.update", ocsfAccountChange, 99, securityInfo("update", true))
	addActivity("Admin deleted security info", "user.security_info.remove", ocsfAccountChange, 11, securityInfo("remove", true))

	// Consent and the grants it causes. "Consent to application" is
	// consent.user.grant unless ConsentContext.IsAdminConsent is "True".
	addActivity("Consent to application", "consent.user.grant", ocsfUserAccessManagement, 1, consent)
	addActivity("Add app role assignment to service principal", "app.role_assignment.add", ocsfUserAccessManagement, 1, appRole("grant"))
	addActivity("Remove app role assignment from service principal", "app.role_assignment.remove", ocsfUserAccessManagement, 2, appRole("revoke"))
	addActivity("Add delegated permission grant", "app.permission_grant.add", ocsfUserAccessManagement, 1, delegatedGrant)
	addActivity("Remove delegated permission grant", "app.permission_grant.remove", ocsfUserAccessManagement, 2, delegatedGrant)

	// Applications and service principals.
	addActivity("Add application", "app.registration.add", ocsfEntityManagement, 1, nil)
	addActivity("Update application", "app.registration.update", ocsfEntityManagement, 3, nil)
	addActivity("Delete application", "app.registration.delete", ocsfEntityManagement, 4, nil)
	addActivity("Hard Delete application", "app.registration.delete", ocsfEntityManagement, 4, nil)
	addActivity("Add service principal", "app.service_principal.add", ocsfEntityManagement, 1, nil)
	addActivity("Delete service principal", "app.service_principal.delete", ocsfEntityManagement, 4, nil)
	// The kind of these two depends on KeyDescription: app.credential.add,
	// .remove or .update (and service_principal.credential.*).
	addActivity("Update application - Certificates and secrets management", "app.credential.update", ocsfEntityManagement, 3, keyCredential("application"))
	addActivity("Add service principal credentials", "service_principal.credential.add", ocsfEntityManagement, 3, keyCredential("service_principal"))
	addActivity("Remove service principal credentials", "service_principal.credential.remove", ocsfEntityManagement, 3, keyCredential("service_principal"))

	// Users.
	addActivity("Add user", "user.create", ocsfAccountChange, 1, nil)
	addActivity("Update user", "user.update", ocsfAccountChange, 99, nil)
	addActivity("Delete user", "user.delete", ocsfAccountChange, 6, nil)
	addActivity("Hard Delete user", "user.delete", ocsfAccountChange, 6, nil)
	addActivity("Restore user", "user.restore", ocsfAccountChange, 99, nil)
	addActivity("Disable account", "user.disable", ocsfAccountChange, 5, nil)
	addActivity("Enable account", "user.enable", ocsfAccountChange, 2, nil)
	addActivity("Reset password (by admin)", "user.password.reset", ocsfAccountChange, 4, password("reset"))
	addActivity("Reset password (self-service)", "user.password.reset", ocsfAccountChange, 4, password("reset"))
	addActivity("Reset password", "user.password.reset", ocsfAccountChange, 4, password("reset"))
	addActivity("Reset user password", "user.password.reset", ocsfAccountChange, 4, password("reset"))
	addActivity("Change password (self-service)", "user.password.change", ocsfAccountChange, 3, password("change"))
	addActivity("Change user password", "user.password.change", ocsfAccountChange, 3, password("change"))

	// Groups.
	addActivity("Add member to group", "group.member.add", ocsfGroupManagement, 3, nil)
	addActivity("Remove member from group", "group.member.remove", ocsfGroupManagement, 4, nil)
	addActivity("Add owner to group", "group.owner.add", ocsfGroupManagement, 1, nil)
	addActivity("Remove owner from group", "group.owner.remove", ocsfGroupManagement, 2, nil)
	addActivity("Add group", "group.create", ocsfGroupManagement, 6, nil)
	addActivity("Delete group", "group.delete", ocsfGroupManagement, 5, nil)
}
