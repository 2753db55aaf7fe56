package oip

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/beamops/beamops/services/inference/gateway/internal/routes"
	"github.com/beamops/beamops/services/inference/gateway/internal/rpcstatus"
)

// route is the route a (model_name, model_version) pair names, with what the request's
// parameters add (a global tag and run):
//
//   - a deployment's name with no version, or the version it serves (either form), or the
//     alias it follows: that deployment;
//   - a model's name with a version or an alias: the deployment of the model serving it (the
//     first by name, as beamops Predict picks); with nothing: the deployment serving the
//     model's only served version;
//   - a run (with a global tag), or an alias no deployment follows: the control plane decides.
func (f *Front) route(ctx context.Context, c Call, name, version string, run *routes.Selector) (*routes.Route, *rpcstatus.Error) {
	if name == "" {
		return nil, rpcstatus.InvalidField("model_name is required: a deployment or a model", "model_name")
	}
	t := f.Routes.Load()
	if run != nil {
		if version != "" {
			return nil, rpcstatus.InvalidField("name a model_version or a run, not both", "model_version")
		}
		run.Model = name
		return f.resolved(ctx, c, *run)
	}
	pv := version
	if p := ParametersVersion(version); p != "" {
		pv = p
	}
	if r := t.Get(name); r != nil && (version == "" || r.Version == pv || r.FollowingAlias == version) {
		return r, nil
	}
	served := t.OfModel(name)
	if version == "" {
		return only(name, served, t.Get(name))
	}
	if r := t.Select(name, pv, ""); r != nil {
		return r, nil
	}
	if r := t.Select(name, "", version); r != nil {
		return r, nil
	}
	if d := t.Get(name); d != nil && len(served) == 0 {
		return nil, rpcstatus.New(codes.NotFound, fmt.Sprintf("deployment %q serves version %s (%s here), not %q",
			name, d.Version, IntegerVersion(d.Version), version))
	}
	if len(served) > 0 && ParametersVersion(version) == "" && !strings.Contains(version, ".") {
		// An alias no deployment follows: the registry says which version it names.
		return f.resolved(ctx, c, routes.Selector{Model: name, Alias: version})
	}
	return nil, rpcstatus.New(codes.NotFound, fmt.Sprintf("version %q of %q is not deployed", version, name))
}

// only is the route of a model named without a version: the deployment of its only served
// version (the first by name when several serve it).
func only(name string, served []*routes.Route, deployment *routes.Route) (*routes.Route, *rpcstatus.Error) {
	if len(served) == 0 {
		if deployment != nil {
			return deployment, nil
		}
		return nil, rpcstatus.New(codes.NotFound, fmt.Sprintf("no deployment or deployed model is named %q", name))
	}
	versions := map[string]bool{}
	for _, r := range served {
		versions[r.Version] = true
	}
	if len(versions) > 1 {
		list := make([]string, 0, len(versions))
		for v := range versions {
			list = append(list, v)
		}
		sort.Strings(list)
		return nil, rpcstatus.New(codes.FailedPrecondition, fmt.Sprintf(
			"model %q has deployments serving %s; set model_version (a version or an alias), or name a deployment",
			name, strings.Join(list, ", ")))
	}
	return served[0], nil
}

// resolved asks the control plane and returns the route of the deployment it names.
func (f *Front) resolved(ctx context.Context, c Call, s routes.Selector) (*routes.Route, *rpcstatus.Error) {
	if f.Resolve == nil {
		return nil, rpcstatus.New(codes.NotFound, fmt.Sprintf("%q: this gateway cannot resolve aliases or runs", s.Model))
	}
	return f.Routes.Resolve(ctx, f.Resolve, strings.TrimSpace(c.Authorization), s)
}
