package identity

import (
	"errors"
	"strings"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// cloudTrailEvents maps "eventSource eventName" to kinds. ConsoleLogin gets
// ".success"/".failure" appended.
var cloudTrailEvents = map[string]oktaEvent{
	"signin.amazonaws.com ConsoleLogin":           {"signin.interactive", ocsfAuthentication, 1},
	"sts.amazonaws.com AssumeRole":                {"session.role.assume", ocsfAuthorizeSession, 1},
	"sts.amazonaws.com AssumeRoleWithSAML":        {"session.role.assume", ocsfAuthorizeSession, 1},
	"sts.amazonaws.com AssumeRoleWithWebIdentity": {"session.role.assume", ocsfAuthorizeSession, 1},
	"iam.amazonaws.com CreateUser":                {"user.create", ocsfAccountChange, 1},
	"iam.amazonaws.com DeleteUser":                {"user.delete", ocsfAccountChange, 6},
	"iam.amazonaws.com CreateAccessKey":           {"user.access_key.add", ocsfEntityManagement, 1},
	"iam.amazonaws.com DeleteAccessKey":           {"user.access_key.remove", ocsfEntityManagement, 4},
	"iam.amazonaws.com AttachUserPolicy":          {"user.policy.attach", ocsfAccountChange, 7},
	"iam.amazonaws.com DetachUserPolicy":          {"user.policy.detach", ocsfAccountChange, 8},
	"iam.amazonaws.com AddUserToGroup":            {"group.member.add", ocsfGroupManagement, 3},
	"iam.amazonaws.com RemoveUserFromGroup":       {"group.member.remove", ocsfGroupManagement, 4},
	"iam.amazonaws.com CreateLoginProfile":        {"user.password.change", ocsfAccountChange, 3},
	"iam.amazonaws.com UpdateLoginProfile":        {"user.password.change", ocsfAccountChange, 3},
	"iam.amazonaws.com EnableMFADevice":           {"user.security_info.add", ocsfAccountChange, 10},
	"iam.amazonaws.com DeactivateMFADevice":       {"user.security_info.remove", ocsfAccountChange, 11},
}

// cloudTrail normalises one CloudTrail record.
func cloudTrail(o obj, ev *stelev1.IdentityEvent) error {
	if !has(o, "eventID", "eventTime", "eventSource", "eventName") {
		if _, ok := o.get("Records"); ok {
			return errors.New(`this is a CloudTrail log file ({"Records":[…]}), not one record: submit each element of Records (stele import cloudtrail splits it)`)
		}
		return errNotFormat("a CloudTrail record", "eventID, eventTime, eventSource, eventName")
	}
	ev.NativeId = o.nativeID("eventID")
	// CloudTrail times are UTC (eventTime "in coordinated universal
	// time"); CloudTrail Lake exports write them without a zone.
	if err := setTimes(ev, zoneUTC, timeField{"eventTime", o.str("eventTime")}); err != nil {
		return err
	}
	ev.NativeAction = o.str("eventName")
	ev.NativeService = o.str("eventSource")
	ev.NativeCategory = o.str("eventCategory")
	ev.NativeOperationType = o.str("eventType")
	ev.Source = &stelev1.IdentitySource{Provider: "aws", Tenant: o.str("recipientAccountId"), Stream: "cloudtrail"}
	if ev.Source.Tenant == "" {
		if ui, _ := o.object("userIdentity", "userIdentity"); ui != nil {
			ev.Source.Tenant = ui.str("accountId")
		}
	}

	ui, err := o.object("userIdentity", "userIdentity")
	if err != nil {
		return err
	}
	if ui != nil {
		p := &stelev1.Principal{NativeType: ui.str("type"), Id: ui.str("principalId"), Login: ui.str("userName"), DisplayName: ui.str("arn"), TenantId: ui.str("accountId"), CredentialId: ui.str("accessKeyId")}
		switch strings.ToLower(p.NativeType) {
		case "iamuser", "identitycenteruser", "federateduser":
			p.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_USER
		case "assumedrole":
			p.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_ASSUMED_ROLE
		case "root":
			p.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_ROOT
		case "awsservice":
			p.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_SYSTEM
		case "":
		default:
			p.Type = stelev1.PrincipalType_PRINCIPAL_TYPE_OTHER
		}
		sc, err := ui.object("sessionContext", "userIdentity.sessionContext")
		if err != nil {
			return err
		}
		if si, err := sc.object("sessionIssuer", "userIdentity.sessionContext.sessionIssuer"); err != nil {
			return err
		} else if si != nil {
			p.Issuer = si.str("arn")
			if p.Login == "" {
				p.Login = si.str("userName")
			}
		}
		ev.Actor = p
	}
	ev.Client = &stelev1.Client{Ip: realIP(ev, o.str("sourceIPAddress")), UserAgent: o.str("userAgent")}
	if r := o.str("requestID"); r != "" {
		ev.Correlation = &stelev1.Correlation{RequestId: r}
	}

	req, err := o.object("requestParameters", "requestParameters")
	if err != nil {
		return err
	}
	resp, err := o.object("responseElements", "responseElements")
	if err != nil {
		return err
	}
	out := &stelev1.Outcome{Code: o.str("errorCode"), Reason: o.str("errorMessage"), Status: stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS}
	if out.Code != "" {
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE
		out.NativeResult = out.Code
	}
	if ev.NativeAction == "ConsoleLogin" {
		// AWS documents a sign-in's result in responseElements.ConsoleLogin
		// ("Success" or "Failure", a failure with errorMessage "Failed
		// authentication"). Without it, and without an error, the record
		// does not say: unknown, not success.
		cl := resp.str("ConsoleLogin")
		out.NativeResult = firstNonEmpty(cl, out.NativeResult)
		switch {
		case strings.EqualFold(cl, "Success") && out.Code == "":
			out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS
		case strings.EqualFold(cl, "Failure") || out.Code != "" || o.str("errorMessage") != "":
			out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE
		default:
			out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_UNSPECIFIED
		}
	}
	ev.Outcome = out

	if u := req.str("userName"); u != "" {
		ev.Targets = append(ev.Targets, &stelev1.Target{NativeType: "IAMUser", Login: u})
	}
	if g := req.str("groupName"); g != "" {
		ev.Targets = append(ev.Targets, &stelev1.Target{NativeType: "IAMGroup", DisplayName: g})
	}
	if r := req.str("roleArn"); r != "" {
		ev.Targets = append(ev.Targets, &stelev1.Target{NativeType: "IAMRole", Id: r, DisplayName: roleName(r)})
	}
	if pa := req.str("policyArn"); pa != "" {
		ev.Targets = append(ev.Targets, &stelev1.Target{NativeType: "IAMPolicy", Id: pa})
	}

	e, ok := cloudTrailEvents[ev.NativeService+" "+ev.NativeAction]
	if !ok {
		ev.Kind = "aws.unknown"
		class(ev, stelev1.EventClass_EVENT_CLASS_OTHER, ocsfEntityManagement, 99)
		addFlag(ev, FlagUnknownActivity)
		return nil
	}
	ev.Kind = e.kind
	class(ev, classOf(e.classUID), e.classUID, e.activityID)
	if strings.HasPrefix(e.kind, "user.security_info.") && (req.str("userName") == "" || req.str("userName") == ev.GetActor().GetLogin()) {
		// An IAM user managing their own MFA device.
		ev.Kind += ".self"
	}
	switch e.kind {
	case "signin.interactive":
		ev.Kind += "." + outcomeSegment(out.Status)
		af := &stelev1.AuthenticationFacet{Type: stelev1.SignInType_SIGN_IN_TYPE_INTERACTIVE}
		if add, _ := o.object("additionalEventData", "additionalEventData"); add != nil {
			switch strings.ToLower(add.str("MFAUsed")) {
			case "yes":
				b := true
				af.Mfa = &b
			case "no":
				b := false
				af.Mfa = &b
			}
		}
		ev.Authentication = af
	case "session.role.assume":
		// The role is requestParameters.roleArn; roleSessionName names the
		// session, not the role.
		ev.Privilege = &stelev1.PrivilegeFacet{Op: "assume", RoleId: req.str("roleArn"), RoleName: roleName(req.str("roleArn")), Assignment: stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE, Duration: stelev1.AssignmentDuration_ASSIGNMENT_DURATION_TIMEBOUND}
	case "user.access_key.add", "user.access_key.remove":
		cf := &stelev1.CredentialFacet{Op: "add", Owner: "user", CredentialType: "access_key", DisplayName: req.str("userName"), KeyId: req.str("accessKeyId")}
		if e.kind == "user.access_key.remove" {
			cf.Op = "remove"
		}
		if ak, _ := resp.object("accessKey", "responseElements.accessKey"); ak != nil {
			cf.KeyId = ak.str("accessKeyId")
			if cf.DisplayName == "" {
				cf.DisplayName = ak.str("userName")
			}
		}
		cf.ByAdmin = cf.DisplayName != "" && ev.GetActor().GetLogin() != cf.DisplayName
		ev.Credential = cf
	case "user.policy.attach", "user.policy.detach":
		op := "attach"
		if e.kind == "user.policy.detach" {
			op = "detach"
		}
		ev.Policy = &stelev1.PolicyFacet{PolicyType: "iam_policy", Id: req.str("policyArn"), Op: op}
		ev.Privilege = &stelev1.PrivilegeFacet{Op: map[string]string{"attach": "grant", "detach": "revoke"}[op], RoleId: req.str("policyArn"), AssigneeLogin: req.str("userName"), Assignment: stelev1.AssignmentKind_ASSIGNMENT_KIND_ACTIVE, Duration: stelev1.AssignmentDuration_ASSIGNMENT_DURATION_PERMANENT}
	}
	return nil
}

// roleName is the name of an IAM role ARN, arn:aws:iam::<account>:role/<path/>name:
// the part after the last "/"; "" when arn is not a role ARN.
func roleName(arn string) string {
	_, res, ok := strings.Cut(arn, ":role/")
	if !ok || !strings.HasPrefix(arn, "arn:") {
		return ""
	}
	return res[strings.LastIndexByte(res, '/')+1:]
}
