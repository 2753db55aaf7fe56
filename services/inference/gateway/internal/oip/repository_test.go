package oip

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/oip/oiptest"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// deployingFront is front's table (jets, jets-next of model jets, other) with a fake deployer.
func deployingFront(t *testing.T) (*Front, *oiptest.Deployer) {
	f, _ := front(t)
	d := &oiptest.Deployer{}
	f.Deployer = d
	return f, d
}

var deployer = Call{Authorization: "Bearer good", RequestID: "r1"}

func strParam(v string) *tritonpb.ModelRepositoryParameter {
	return &tritonpb.ModelRepositoryParameter{ParameterChoice: &tritonpb.ModelRepositoryParameter_StringParam{StringParam: v}}
}

func intParam(n int64) *tritonpb.ModelRepositoryParameter {
	return &tritonpb.ModelRepositoryParameter{ParameterChoice: &tritonpb.ModelRepositoryParameter_Int64Param{Int64Param: n}}
}

func boolParam(b bool) *tritonpb.ModelRepositoryParameter {
	return &tritonpb.ModelRepositoryParameter{ParameterChoice: &tritonpb.ModelRepositoryParameter_BoolParam{BoolParam: b}}
}

func bytesParam(b []byte) *tritonpb.ModelRepositoryParameter {
	return &tritonpb.ModelRepositoryParameter{ParameterChoice: &tritonpb.ModelRepositoryParameter_BytesParam{BytesParam: b}}
}

func aliasTarget(a string) *inferencev1.DeploymentTarget {
	return &inferencev1.DeploymentTarget{Target: &inferencev1.DeploymentTarget_Alias{Alias: a}}
}

func versionTarget(v string) *inferencev1.DeploymentTarget {
	return &inferencev1.DeploymentTarget{Target: &inferencev1.DeploymentTarget_ParametersVersion{ParametersVersion: v}}
}

// checkDeploy checks the one Deploy made: want, with any non-empty Reason.
func checkDeploy(t *testing.T, d *oiptest.Deployer, want *inferencev1.DeployRequest) {
	t.Helper()
	if len(d.Deploys) != 1 || len(d.Undeploys) != 0 {
		t.Fatalf("%d deploys, %d undeploys, want one deploy %v", len(d.Deploys), len(d.Undeploys), want)
	}
	got := proto.Clone(d.Deploys[0]).(*inferencev1.DeployRequest)
	if strings.TrimSpace(got.Reason) == "" {
		t.Errorf("Deploy without a reason for the audit log: %v", got)
	}
	got.Reason = ""
	if !proto.Equal(got, want) {
		t.Errorf("Deploy %v, want %v", got, want)
	}
}

func TestRepositoryModelLoadDeploysProductionByDefault(t *testing.T) {
	f, d := deployingFront(t)
	for _, params := range []map[string]*tritonpb.ModelRepositoryParameter{nil, {}} {
		d.Deploys, d.Auths = nil, nil
		resp, e := f.RepositoryModelLoad(context.Background(), deployer, &tritonpb.RepositoryModelLoadRequest{
			ModelName: "bdt", Parameters: params})
		if e != nil || resp == nil {
			t.Fatalf("load: %v %v", resp, e)
		}
		checkDeploy(t, d, &inferencev1.DeployRequest{Model: "bdt", Name: "bdt", Target: aliasTarget(DefaultLoadAlias), Replace: true})
		if DefaultLoadAlias != "production" {
			t.Errorf("default alias %q", DefaultLoadAlias)
		}
		if len(d.Auths) != 1 || d.Auths[0] != deployer.Authorization {
			t.Errorf("authorization %q, want the caller's %q", d.Auths, deployer.Authorization)
		}
	}
}

func TestRepositoryModelLoadTargets(t *testing.T) {
	for name, c := range map[string]struct {
		params map[string]*tritonpb.ModelRepositoryParameter
		want   *inferencev1.DeploymentTarget
	}{
		"version string":  {map[string]*tritonpb.ModelRepositoryParameter{"version": strParam("1.2")}, versionTarget("1.2")},
		"version integer": {map[string]*tritonpb.ModelRepositoryParameter{"version": intParam(1000002)}, versionTarget("1.2")},
		"integer form as a string": {map[string]*tritonpb.ModelRepositoryParameter{"version": strParam("2000013")},
			versionTarget("2.13")},
		"version 0.7 as an integer": {map[string]*tritonpb.ModelRepositoryParameter{"version": intParam(7)}, versionTarget("0.7")},
		"alias":                     {map[string]*tritonpb.ModelRepositoryParameter{"alias": strParam("candidate")}, aliasTarget("candidate")},
		"config": {map[string]*tritonpb.ModelRepositoryParameter{
			"config": strParam(`{"version_policy": {"specific": {"versions": [1000002]}}}`)}, versionTarget("1.2")},
		"config with its name": {map[string]*tritonpb.ModelRepositoryParameter{
			"config": strParam(`{"name": "bdt", "version_policy": {"specific": {"versions": [3000000]}}}`)}, versionTarget("3.0")},
	} {
		t.Run(name, func(t *testing.T) {
			f, d := deployingFront(t)
			if _, e := f.RepositoryModelLoad(context.Background(), deployer, &tritonpb.RepositoryModelLoadRequest{
				ModelName: "bdt", Parameters: c.params}); e != nil {
				t.Fatal(e)
			}
			checkDeploy(t, d, &inferencev1.DeployRequest{Model: "bdt", Name: "bdt", Target: c.want, Replace: true})
		})
	}
}

func TestRepositoryModelLoadOfAServedDeployment(t *testing.T) {
	f, d := deployingFront(t)
	// Served already, no target named: loaded again with what it serves (a reload, as Triton's),
	// the alias it follows or its version, as the deployment of its own model.
	for _, name := range []string{"jets", "jets-next"} {
		resp, e := f.RepositoryModelLoad(context.Background(), deployer, &tritonpb.RepositoryModelLoadRequest{ModelName: name})
		if e != nil || resp == nil {
			t.Errorf("%s: %v %v", name, resp, e)
		}
	}
	if d.Calls() != 2 {
		t.Fatalf("reloads: %v", d.Deploys)
	}
	checkDeploy(t, &oiptest.Deployer{Deploys: d.Deploys[:1]}, &inferencev1.DeployRequest{Model: "jets", Name: "jets",
		Target: aliasTarget("production"), Replace: true})
	checkDeploy(t, &oiptest.Deployer{Deploys: d.Deploys[1:2]}, &inferencev1.DeployRequest{Model: "jets", Name: "jets-next",
		Target: versionTarget("1.1"), Replace: true})
	d.Deploys, d.Auths = nil, nil
	// A target named: switched, as the deployment of its own model (jets-next serves model jets).
	if _, e := f.RepositoryModelLoad(context.Background(), deployer, &tritonpb.RepositoryModelLoadRequest{ModelName: "jets-next",
		Parameters: map[string]*tritonpb.ModelRepositoryParameter{"version": intParam(1000000)}}); e != nil {
		t.Fatal(e)
	}
	checkDeploy(t, d, &inferencev1.DeployRequest{Model: "jets", Name: "jets-next", Target: versionTarget("1.0"), Replace: true})
	d.Deploys = nil
	if _, e := f.RepositoryModelLoad(context.Background(), deployer, &tritonpb.RepositoryModelLoadRequest{ModelName: "other",
		Parameters: map[string]*tritonpb.ModelRepositoryParameter{"alias": strParam("production")}}); e != nil {
		t.Fatal(e)
	}
	checkDeploy(t, d, &inferencev1.DeployRequest{Model: "other", Name: "other", Target: aliasTarget("production"), Replace: true})
}

func TestRepositoryModelLoadRefusesParameters(t *testing.T) {
	config := func(s string) map[string]*tritonpb.ModelRepositoryParameter {
		return map[string]*tritonpb.ModelRepositoryParameter{"config": strParam(s)}
	}
	for name, params := range map[string]map[string]*tritonpb.ModelRepositoryParameter{
		"file":                    {"file:1/model.onnx": bytesParam([]byte("onnx"))},
		"unknown string":          {"versoin": strParam("1.2")},
		"version and alias":       {"version": strParam("1.2"), "alias": strParam("production")},
		"version and config":      {"version": intParam(1000002), "config": strParam(`{"version_policy": {"specific": {"versions": [1000002]}}}`)},
		"alias and config":        {"alias": strParam("candidate"), "config": strParam(`{"version_policy": {"specific": {"versions": [1000002]}}}`)},
		"empty alias":             {"alias": strParam("")},
		"alias not a string":      {"alias": intParam(3)},
		"empty version":           {"version": strParam("")},
		"version a boolean":       {"version": boolParam(true)},
		"config max_batch_size":   config(`{"max_batch_size": 8, "version_policy": {"specific": {"versions": [1000002]}}}`),
		"config instance_group":   config(`{"instance_group": [{"count": 2}], "version_policy": {"specific": {"versions": [1000002]}}}`),
		"config latest":           config(`{"version_policy": {"latest": {"num_versions": 1}}}`),
		"config no version":       config(`{"version_policy": {"specific": {"versions": []}}}`),
		"config empty":            config(`{}`),
		"config two versions":     config(`{"version_policy": {"specific": {"versions": [1000002, 1000003]}}}`),
		"config fractional":       config(`{"version_policy": {"specific": {"versions": [1.5]}}}`),
		"config negative":         config(`{"version_policy": {"specific": {"versions": [-1]}}}`),
		"version word":            {"version": strParam("production")},
		"version not a number":    {"version": strParam("1.x")},
		"negative version":        {"version": intParam(-5)},
		"config then more":        config(`{"version_policy": {"specific": {"versions": [1000002]}}} {"max_batch_size": 8}`),
		"config version word":     config(`{"version_policy": {"specific": {"versions": ["production"]}}}`),
		"config not JSON":         config(`version 1.2`),
		"config empty string":     config(``),
		"config not a string":     {"config": intParam(1000002)},
		"config and unknown file": {"config": strParam(`{"version_policy": {"specific": {"versions": [1000002]}}}`), "file:1/model.onnx": bytesParam(nil)},
	} {
		f, d := deployingFront(t)
		_, e := f.RepositoryModelLoad(context.Background(), deployer, &tritonpb.RepositoryModelLoadRequest{ModelName: "bdt", Parameters: params})
		if e == nil || e.Code != codes.InvalidArgument || e.Field != "parameters" {
			t.Errorf("%s: %v, want INVALID_ARGUMENT on parameters", name, e)
		}
		if d.Calls() != 0 {
			t.Errorf("%s: deployed %v", name, d.Deploys)
		}
	}
	// The refusal names the parameter it does not take.
	f, _ := deployingFront(t)
	_, e := f.RepositoryModelLoad(context.Background(), deployer, &tritonpb.RepositoryModelLoadRequest{ModelName: "bdt",
		Parameters: map[string]*tritonpb.ModelRepositoryParameter{"file:1/model.onnx": bytesParam([]byte("onnx"))}})
	if e == nil || !strings.Contains(e.Message, "file:1/model.onnx") {
		t.Errorf("unknown parameter: %v", e)
	}
}

func TestRepositoryCallsNeedADeployerATokenAndAName(t *testing.T) {
	ctx := context.Background()
	load := func(f *Front, c Call, name string) *rpcstatus.Error {
		_, e := f.RepositoryModelLoad(ctx, c, &tritonpb.RepositoryModelLoadRequest{ModelName: name,
			Parameters: map[string]*tritonpb.ModelRepositoryParameter{"version": strParam("1.2")}})
		return e
	}
	unload := func(f *Front, c Call, name string) *rpcstatus.Error {
		_, e := f.RepositoryModelUnload(ctx, c, &tritonpb.RepositoryModelUnloadRequest{ModelName: name})
		return e
	}
	for method, call := range map[string]func(*Front, Call, string) *rpcstatus.Error{
		"RepositoryModelLoad": load, "RepositoryModelUnload": unload} {
		for _, auth := range []string{"", "   ", "\t"} {
			f, d := deployingFront(t)
			if e := call(f, Call{Authorization: auth}, "jets"); e == nil || e.Code != codes.Unauthenticated {
				t.Errorf("%s, authorization %q: %v", method, auth, e)
			}
			if d.Calls() != 0 {
				t.Errorf("%s, authorization %q: the deployer was called", method, auth)
			}
		}
		// An unknown token is refused here, even where nothing would be deployed (jets serves).
		if method == "RepositoryModelLoad" {
			f, d := deployingFront(t)
			_, e := f.RepositoryModelLoad(ctx, Call{Authorization: "Bearer garbage"},
				&tritonpb.RepositoryModelLoadRequest{ModelName: "jets"})
			if e == nil || e.Code != codes.Unauthenticated || d.Calls() != 0 {
				t.Errorf("load of a served deployment with an unknown token: %v, %d calls", e, d.Calls())
			}
		}
		// A certificate is no deployer's token.
		f, d := deployingFront(t)
		if e := call(f, Call{ClientSubject: "CN=cms-hlt,O=CERN"}, "jets"); e == nil || e.Code != codes.Unauthenticated || d.Calls() != 0 {
			t.Errorf("%s with a certificate only: %v, %d calls", method, e, d.Calls())
		}
		if e := call(f, deployer, ""); e == nil || e.Code != codes.InvalidArgument || e.Field != "model_name" || d.Calls() != 0 {
			t.Errorf("%s without a name: %v, %d calls", method, e, d.Calls())
		}
		without, _ := front(t) // no Deployer
		e := call(without, deployer, "jets")
		if e == nil || e.Code != codes.Unimplemented || !strings.Contains(e.Message, method) {
			t.Errorf("%s without a deployer: %v", method, e)
		}
	}
}

func TestRepositoryModelLoadPassesTheDeployersErrorOn(t *testing.T) {
	for _, want := range []*rpcstatus.Error{rpcstatus.New(codes.PermissionDenied, "needs the deployer role"),
		rpcstatus.New(codes.NotFound, "no model bdt in the registry"),
		rpcstatus.InvalidField("version 9.9 of bdt does not exist", "target.parameters_version")} {
		f, d := deployingFront(t)
		d.Err = want
		resp, e := f.RepositoryModelLoad(context.Background(), deployer, &tritonpb.RepositoryModelLoadRequest{ModelName: "bdt"})
		if resp != nil || e != want {
			t.Errorf("load: %v %v, want %v unchanged", resp, e, want)
		}
		if len(d.Deploys) != 1 {
			t.Errorf("%d deploys", len(d.Deploys))
		}
	}
}

func TestRepositoryModelUnload(t *testing.T) {
	ctx := context.Background()
	for _, params := range []map[string]*tritonpb.ModelRepositoryParameter{nil,
		{"unload_dependents": boolParam(true)}, {"unload_dependents": boolParam(false)}} {
		f, d := deployingFront(t)
		resp, e := f.RepositoryModelUnload(ctx, deployer, &tritonpb.RepositoryModelUnloadRequest{ModelName: "jets-next", Parameters: params})
		if e != nil || resp == nil {
			t.Fatalf("unload %v: %v %v", params, resp, e)
		}
		if len(d.Undeploys) != 1 || len(d.Deploys) != 0 {
			t.Fatalf("unload %v: %d undeploys, %d deploys", params, len(d.Undeploys), len(d.Deploys))
		}
		got := d.Undeploys[0]
		if got.GetName() != "jets-next" || strings.TrimSpace(got.GetReason()) == "" {
			t.Errorf("Undeploy %v", got)
		}
		if d.Auths[0] != deployer.Authorization {
			t.Errorf("authorization %q", d.Auths[0])
		}
	}
	// A deployment the gateway does not serve itself is the control plane's to find.
	f, d := deployingFront(t)
	if _, e := f.RepositoryModelUnload(ctx, deployer, &tritonpb.RepositoryModelUnloadRequest{ModelName: "bdt"}); e != nil ||
		len(d.Undeploys) != 1 || d.Undeploys[0].GetName() != "bdt" {
		t.Errorf("unload of bdt: %v %v", e, d.Undeploys)
	}
	for name, params := range map[string]map[string]*tritonpb.ModelRepositoryParameter{
		"version":             {"version": strParam("1.2")},
		"unknown with known":  {"unload_dependents": boolParam(true), "force": boolParam(true)},
		"misspelt dependents": {"unload_dependent": boolParam(true)},
	} {
		f, d := deployingFront(t)
		_, e := f.RepositoryModelUnload(ctx, deployer, &tritonpb.RepositoryModelUnloadRequest{ModelName: "jets", Parameters: params})
		if e == nil || e.Code != codes.InvalidArgument || e.Field != "parameters" || d.Calls() != 0 {
			t.Errorf("%s: %v, %d calls", name, e, d.Calls())
		}
	}
	want := rpcstatus.New(codes.PermissionDenied, "needs the deployer role")
	f, d = deployingFront(t)
	d.Err = want
	if resp, e := f.RepositoryModelUnload(ctx, deployer, &tritonpb.RepositoryModelUnloadRequest{ModelName: "jets"}); resp != nil || e != want {
		t.Errorf("unload: %v %v, want %v unchanged", resp, e, want)
	}
}
