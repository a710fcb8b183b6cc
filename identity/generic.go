package identity

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	stelev1 "github.com/stele-dev/stele/proto/stele/v1"
)

// genericJSON normalises a JSON object of a format Stele has no dedicated
// normaliser for: the native id is a top-level string "id", the event time
// a top-level RFC 3339 "time" or "timestamp". The kind is GenericKind and
// not binding (see KindAuthoritative).
func genericJSON(o obj, ev *stelev1.IdentityEvent) error {
	ev.Source = &stelev1.IdentitySource{Provider: "json"}
	ev.NativeId = o.nativeID("id")
	for _, k := range []string{"time", "timestamp"} {
		if v, _ := o.lookup(k); v.kind == kindString && v.text != "" {
			s := v.text
			if err := setTime(ev, k, s); err != nil {
				return err
			}
			break
		}
	}
	ev.Kind = GenericKind
	class(ev, stelev1.EventClass_EVENT_CLASS_OTHER, ocsfEntityManagement, 99)
	return nil
}

// ocsfInput normalises an event that is already OCSF: the native id is
// metadata.uid, the time the epoch-milliseconds "time", the kind
// "ocsf.<class_uid>.<activity_id>".
func ocsfInput(o obj, ev *stelev1.IdentityEvent) error {
	classUID, err := intField(o, "class_uid")
	if err != nil {
		return err
	}
	activityID, err := intField(o, "activity_id")
	if err != nil {
		return err
	}
	if classUID <= 0 || classUID > 1_000_000 {
		return fmt.Errorf("class_uid %d is out of range", classUID)
	}
	if activityID < 0 || activityID > 255 {
		return fmt.Errorf("activity_id %d is out of range 0..255", activityID)
	}
	md, err := o.object("metadata", "metadata")
	if err != nil {
		return err
	}
	ev.NativeId = md.nativeID("uid")
	ev.Source = &stelev1.IdentitySource{Provider: "ocsf", Tenant: md.str("tenant_uid")}
	if prod, err := md.object("product", "metadata.product"); err != nil {
		return err
	} else if prod != nil {
		ev.NativeService = prod.str("name")
	}
	if v, ok := o.get("time"); ok {
		ms, err := strconv.ParseInt(v.text, 10, 64)
		if v.kind != kindNumber || err != nil {
			return fmt.Errorf("time is %s, want epoch milliseconds as an integer", jsonType(v))
		}
		// Years 0001 to 9999, the range of a protobuf Timestamp.
		if ms < -62135596800000 || ms > 253402300799999 {
			return fmt.Errorf("time %d is outside the years 0001 to 9999", ms)
		}
		ev.EventTime = timestamppb.New(msTime(ms))
		ev.EventTimeText = v.text
	}
	ev.NativeAction = o.str("activity_name")
	ev.NativeCategory = o.str("class_name")
	out := &stelev1.Outcome{NativeResult: o.str("status"), Code: o.str("status_code"), Reason: o.str("status_detail")}
	switch o.str("status_id") {
	case "1":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_SUCCESS
	case "2":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_FAILURE
	case "99":
		out.Status = stelev1.OutcomeStatus_OUTCOME_STATUS_OTHER
	}
	ev.Outcome = out
	if user, err := o.object("user", "user"); err != nil {
		return err
	} else if user != nil {
		ev.Targets = append(ev.Targets, &stelev1.Target{NativeType: "user", Id: user.str("uid"), Login: user.str("email_addr"), DisplayName: user.str("name")})
	}
	if actor, err := o.object("actor", "actor"); err != nil {
		return err
	} else if u, err := actor.object("user", "actor.user"); err != nil {
		return err
	} else if u != nil {
		ev.Actor = &stelev1.Principal{NativeType: "user", Type: stelev1.PrincipalType_PRINCIPAL_TYPE_USER, Id: u.str("uid"), Login: u.str("email_addr"), DisplayName: u.str("name")}
	}
	if se, err := o.object("src_endpoint", "src_endpoint"); err != nil {
		return err
	} else if se != nil {
		ev.Client = &stelev1.Client{Ip: realIP(ev, se.str("ip"))}
	}
	ev.Kind = fmt.Sprintf("ocsf.%d.%d", classUID, activityID)
	ev.EventClass = classOf(int32(classUID))
	ev.Ocsf = &stelev1.OcsfClass{ClassUid: int32(classUID), ActivityId: int32(activityID)}
	if ev.EventClass == stelev1.EventClass_EVENT_CLASS_OTHER {
		addFlag(ev, FlagUnknownActivity)
	}
	return nil
}

func intField(o obj, key string) (int64, error) {
	v, ok := o.get(key)
	if !ok {
		return 0, fmt.Errorf("%s is missing: an OCSF event names its class and activity", key)
	}
	if v.kind != kindNumber {
		return 0, fmt.Errorf("%s is a JSON %s, want an integer", key, jsonType(v))
	}
	i, err := strconv.ParseInt(v.text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %s is not an integer", key, v.text)
	}
	return i, nil
}
