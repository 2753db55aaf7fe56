package oip

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	inferencev1 "github.com/beamops/beamops/clients/go/gen/beamops/inference/v1"

	tritonpb "github.com/beamops/beamops/services/inference/gateway/gen/triton"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// Deployer makes and removes deployments for the protocol's repository extension: the control
// plane's InferenceService.Deploy and Undeploy, called with the caller's authorization, so the
// control plane checks the deployer role and writes the change to the audit log under the
// caller's name.
type Deployer interface {
	Deploy(ctx context.Context, authorization string, req *inferencev1.DeployRequest) *rpcstatus.Error
	Undeploy(ctx context.Context, authorization string, req *inferencev1.UndeployRequest) *rpcstatus.Error
}

// DefaultLoadAlias is the alias RepositoryModelLoad deploys when it names no version or alias.
const DefaultLoadAlias = "production"

// RepositoryModelLoad deploys a registry model (model_name) and returns once it serves, as
// Triton returns once a model is loaded. Parameters pick what it serves: "version" (a
// parameters version, or its integer form), "alias" (followed as it moves), or Triton's own
// "config" with one version in version_policy.specific (what stock clients' load_model sends);
// none: the "production" alias. A deployment that serves already is loaded again, as Triton
// reloads a loaded model: with what it serves (the alias it follows, or its version) unless a
// parameter names another target; either way it switches without failed requests.
func (f *Front) RepositoryModelLoad(ctx context.Context, c Call, req *tritonpb.RepositoryModelLoadRequest) (*tritonpb.RepositoryModelLoadResponse, *rpcstatus.Error) {
	name, e := f.repositoryCall(ctx, c, "RepositoryModelLoad", req.GetModelName())
	if e != nil {
		return nil, e
	}
	target, e := loadTarget(req.GetParameters())
	if e != nil {
		return nil, e
	}
	model := name
	if r := f.Routes.Load().Get(name); r != nil {
		model = r.Model
		if target == nil { // a reload, as Triton's: what it serves, loaded again
			target = &inferencev1.DeploymentTarget{Target: &inferencev1.DeploymentTarget_ParametersVersion{ParametersVersion: r.Version}}
			if r.FollowingAlias != "" {
				target = &inferencev1.DeploymentTarget{Target: &inferencev1.DeploymentTarget_Alias{Alias: r.FollowingAlias}}
			}
		}
	}
	if target == nil {
		target = &inferencev1.DeploymentTarget{Target: &inferencev1.DeploymentTarget_Alias{Alias: DefaultLoadAlias}}
	}
	e = f.Deployer.Deploy(ctx, strings.TrimSpace(c.Authorization), &inferencev1.DeployRequest{Model: model, Name: name, Target: target,
		Replace: true, Reason: "RepositoryModelLoad (Triton's protocol)"})
	if e != nil {
		return nil, e
	}
	return &tritonpb.RepositoryModelLoadResponse{}, nil
}

// RepositoryModelUnload undeploys a deployment (model_name).
func (f *Front) RepositoryModelUnload(ctx context.Context, c Call, req *tritonpb.RepositoryModelUnloadRequest) (*tritonpb.RepositoryModelUnloadResponse, *rpcstatus.Error) {
	name, e := f.repositoryCall(ctx, c, "RepositoryModelUnload", req.GetModelName())
	if e != nil {
		return nil, e
	}
	for key := range req.GetParameters() {
		if key != "unload_dependents" { // a beamops deployment has no dependents
			return nil, rpcstatus.InvalidField(fmt.Sprintf("parameter %q is not taken by RepositoryModelUnload", key), "parameters")
		}
	}
	e = f.Deployer.Undeploy(ctx, strings.TrimSpace(c.Authorization), &inferencev1.UndeployRequest{Name: name,
		Reason: "RepositoryModelUnload (Triton's protocol)"})
	if e != nil {
		return nil, e
	}
	return &tritonpb.RepositoryModelUnloadResponse{}, nil
}

// repositoryCaller checks the caller of a repository call: a deployer here and a valid token (the
// control plane checks its role).
func (f *Front) repositoryCaller(method string) func(context.Context, Call) *rpcstatus.Error {
	return func(ctx context.Context, c Call) *rpcstatus.Error {
		if f.Deployer == nil {
			return rpcstatus.New(codes.Unimplemented, method+" needs the control plane, which this gateway runs without")
		}
		authorization := strings.TrimSpace(c.Authorization)
		if authorization == "" {
			return rpcstatus.New(codes.Unauthenticated, method+" changes what is served: send a deployer's token "+
				"(authorization: Bearer <token>)")
		}
		return f.Auth.Check(ctx, authorization, method)
	}
}

// repositoryCall checks what both calls need: the caller (repositoryCaller) and a model name.
func (f *Front) repositoryCall(ctx context.Context, c Call, method, name string) (string, *rpcstatus.Error) {
	if e := f.repositoryCaller(method)(ctx, c); e != nil {
		return "", e
	}
	if name == "" {
		return "", rpcstatus.InvalidField("model_name is required: a registry model or a deployment", "model_name")
	}
	return name, nil
}

// loadTarget is the target the load parameters name (nil: none).
func loadTarget(params map[string]*tritonpb.ModelRepositoryParameter) (*inferencev1.DeploymentTarget, *rpcstatus.Error) {
	var target *inferencev1.DeploymentTarget
	for key, p := range params {
		if target != nil {
			return nil, rpcstatus.InvalidField("set one of the parameters \"version\", \"alias\" or \"config\"", "parameters")
		}
		switch key {
		case "version":
			v := p.GetStringParam()
			if n, ok := p.GetParameterChoice().(*tritonpb.ModelRepositoryParameter_Int64Param); ok {
				v = strconv.FormatInt(n.Int64Param, 10)
			}
			if pv := ParametersVersion(v); pv != "" {
				v = pv
			} else if IntegerVersion(v) == "" {
				v = ""
			}
			if v == "" {
				return nil, rpcstatus.InvalidField("parameter \"version\" must be a parameters version such as \"1.2\"", "parameters")
			}
			target = &inferencev1.DeploymentTarget{Target: &inferencev1.DeploymentTarget_ParametersVersion{ParametersVersion: v}}
		case "config":
			v, e := configVersion(p.GetStringParam())
			if e != nil {
				return nil, e
			}
			target = &inferencev1.DeploymentTarget{Target: &inferencev1.DeploymentTarget_ParametersVersion{ParametersVersion: v}}
		case "alias":
			a := p.GetStringParam()
			if a == "" {
				return nil, rpcstatus.InvalidField("parameter \"alias\" must be an alias such as \"production\"", "parameters")
			}
			target = &inferencev1.DeploymentTarget{Target: &inferencev1.DeploymentTarget_Alias{Alias: a}}
		default:
			return nil, rpcstatus.InvalidField(fmt.Sprintf("parameter %q is not taken: beamops deploys registry versions; "+
				"set \"version\", \"alias\" or a \"config\" with version_policy.specific", key), "parameters")
		}
	}
	return target, nil
}

// configVersion is the parameters version a load's model configuration names: Triton's
// {"version_policy": {"specific": {"versions": [N]}}} with one integer version (versions.go).
// Serving settings are beamops Deploy's: any other field is refused.
func configVersion(config string) (string, *rpcstatus.Error) {
	var c struct {
		Name          string `json:"name"`
		VersionPolicy struct {
			Specific struct {
				Versions []json.Number `json:"versions"`
			} `json:"specific"`
		} `json:"version_policy"`
	}
	dec := json.NewDecoder(strings.NewReader(config))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	refuse := rpcstatus.InvalidField("parameter \"config\" may only name one version: "+
		`{"version_policy": {"specific": {"versions": [1000002]}}} (version 1.2); serving settings are set with beamops deploy`,
		"parameters")
	if err := dec.Decode(&c); err != nil || dec.More() || len(c.VersionPolicy.Specific.Versions) != 1 {
		return "", refuse
	}
	v := ParametersVersion(c.VersionPolicy.Specific.Versions[0].String())
	if v == "" {
		return "", refuse
	}
	return v, nil
}
